"""ONNX → TensorRT plan for TensorRT 8.6 → 11 and TensorRT-RTX, with a manifest, golden I/O and an engine cache.

``python -m export.engine --onnx asl_cnn.int8.onnx [--out asl_cnn.int8.plan] [--min-batch 1 --opt-batch 8
--max-batch 64] [--workspace MiB] [--timing-cache FILE] [--dla-core N --gpu-fallback] [--version-compatible]
[--hardware-compatibility none|ampere+] [--calib-cache FILE] [--json]``

The path is chosen by capability and logged:

- ``strongly-typed``: the network is created STRONGLY_TYPED where that flag exists (TensorRT ≥ 9,
  TensorRT-RTX); precision comes from the ONNX file (fp32 / fp16 / int8 Q/DQ).
- ``weakly-typed+flags``: older TensorRT (8.6): the FP16 / INT8 builder flags the file's precision needs.
- ``implicit-calibrator``: ``--calib-cache`` on an FP32 file where ``IInt8EntropyCalibrator2`` exists
  (TensorRT ≤ 10): the cache (``python -m calibration`` writes it) is read by a calibrator, its
  header re-tagged for this TensorRT version.

The plan is written atomically with ``<plan>.json`` (the manifest) and ``<plan>.golden.npz``
(real calibration samples and their FP32 outputs) for ``runtime.infer --self-test``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.atomic import write_bytes_atomic, write_text_atomic
from runtime.cli import describe
from runtime.engine_manifest import (EngineManifest,
                                     manifest_path, preflight, rebuild_command, sha256_file)
from runtime.errors import ModelLoadError
from runtime.spec import METADATA_KEY, ModelSpec
from runtime.trt_import import import_tensorrt

HARDWARE_LEVELS = ("none", "ampere+")


class EngineBuildError(Exception):
    """The ONNX file cannot become an engine; the message says why and what to do."""


@dataclass(frozen=True)
class BuildOptions:
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    calib_cache: Path | None = None
    flavour: str | None = None  # force "tensorrt" or "tensorrt_rtx"

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise EngineBuildError(f"batch profile must satisfy 1 ≤ min ≤ opt ≤ max, got "
                                   f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            raise EngineBuildError(f"--hardware-compatibility {self.hardware_compatibility!r}: choose from "
                                   f"{list(HARDWARE_LEVELS)}")

    def cli_args(self) -> list[str]:
        args = ["--min-batch", str(self.min_batch), "--opt-batch", str(self.opt_batch), "--max-batch", str(self.max_batch)]
        if self.calib_cache:
            args += ["--calib-cache", str(self.calib_cache)]
        if self.version_compatible:
            args.append("--version-compatible")
        if self.hardware_compatibility != "none":
            args += ["--hardware-compatibility", self.hardware_compatibility]
        if self.dla_core is not None:
            args += ["--dla-core", str(self.dla_core)] + (["--gpu-fallback"] if self.gpu_fallback else [])
        return args


@dataclass
class OnnxInfo:
    path: Path
    sha256: str
    precision: str
    spec: ModelSpec | None
    calibration_sha256: str | None
    metadata: dict[str, str] = field(default_factory=dict)


def inspect_onnx(path: Path) -> OnnxInfo:
    """Read the file, refuse what the TensorRT parser would choke on, with our own message."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EngineBuildError(f"{path}: ONNX file not found")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # DecodeError, ValidationError, …
        raise EngineBuildError(f"{path}: not a valid ONNX model ({str(exc).splitlines()[0][:200]}); re-export it "
                               "with `python -m export`") from None
    inits = {t.name: t.data_type for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and inits.get(node.input[0]) == onnx.TensorProto.INT32:
            raise EngineBuildError(
                f"{path}: node {node.name!r} dequantizes an int32 bias ({node.input[0]}); the TensorRT ONNX parser "
                "rejects int32-bias Q/DQ (ONNX Runtime's default quantize_static output). Write the TensorRT "
                "int8 file with `python -m calibration --model NAME` (bias left in float)")
        if node.domain == "com.microsoft":
            raise EngineBuildError(f"{path}: node {node.name!r} is ONNX Runtime's {node.op_type} (com.microsoft), "
                                   "which TensorRT cannot parse; this is the ONNX Runtime CPU form "
                                   "(*.int8.ort.onnx) — build from *.int8.onnx instead")
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = ModelSpec.from_json(meta[METADATA_KEY], source=f"{path} metadata") if METADATA_KEY in meta else None
    return OnnxInfo(path, sha256_file(path), meta.get("edge_toolkit.precision", "fp32"), spec,
                    meta.get("edge_toolkit.calibration_sha256"), meta)


def default_plan_path(onnx_path: Path) -> Path:
    name = Path(onnx_path).name
    return Path(onnx_path).with_name((name[:-5] if name.endswith(".onnx") else name) + ".plan")


def _device(trt) -> dict | None:
    """The GPU the build targets, or None on a machine without one (TensorRT-RTX ahead-of-time builds)."""
    from runtime import cuda

    try:
        if not cuda.device_count():
            return None
        info = cuda.device_info(0)
    except cuda.CudaError:  # cuda-python missing or the driver refuses
        return None
    return {"name": info["name"], "compute_capability": info["compute_capability"]}


def _jetson() -> dict | None:
    release = Path("/etc/nv_tegra_release")
    model = Path("/proc/device-tree/model")
    if not release.is_file():
        return None
    return {"l4t": release.read_text(errors="replace").splitlines()[0][:120],
            "model": model.read_text(errors="replace").strip("\x00\n") if model.is_file() else None}


def _logger(trt, verbose: bool = False):
    """A TensorRT logger that keeps errors for our message instead of dumping them."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(str(msg))
            elif verbose:
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return Logger()


def _progress_monitor(trt):
    """A tqdm bar per build phase, where the TensorRT has IProgressMonitor (≥ 10)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.bars[phase_name] = tqdm(total=num_steps, desc=f"build: {phase_name}", leave=False,
                                         disable=not sys.stderr.isatty())

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # keep building

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def _cache_calibrator(trt, cache_text: str):
    """IInt8EntropyCalibrator2 that only serves the cache (no data: every range is in the cache)."""
    from calibration.trt_cache import retag, version_tag

    cache = retag(cache_text, version_tag(trt.__version__)).encode()

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None  # nothing to calibrate: the cache has the ranges

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, cache_bytes):
            return None

    return CacheCalibrator()


def build_engine(onnx_path: Path, out: Path | None = None, options: BuildOptions = BuildOptions(),
                 golden: tuple[np.ndarray, np.ndarray] | None = None, log=print) -> tuple[Path, EngineManifest]:
    """Parse, configure, build, write ``out`` + manifest (+ golden I/O). Raises EngineBuildError."""
    info = inspect_onnx(onnx_path)
    out = Path(out) if out else default_plan_path(info.path)
    try:
        trt, flavour = import_tensorrt(options.flavour)
    except ModelLoadError as exc:
        raise EngineBuildError(str(exc)) from None
    logger = _logger(trt)
    builder = trt.Builder(logger)
    implicit = options.calib_cache is not None
    if implicit and not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineBuildError(f"--calib-cache needs the implicit INT8 path, which {flavour} {trt.__version__} does "
                               "not have (no calibrator classes: TensorRT 11 and TensorRT-RTX are strongly typed); "
                               "build the explicit file *.int8.onnx instead")
    if implicit and info.precision != "fp32":
        raise EngineBuildError(f"--calib-cache goes with the FP32 file (the cache holds its ranges), not a "
                               f"{info.precision} file; pass *.prep.onnx or *.fp32.onnx")
    creation = trt.NetworkDefinitionCreationFlag
    flags = 0
    strongly_typed = hasattr(creation, "STRONGLY_TYPED") and not implicit
    if strongly_typed:
        flags |= 1 << int(creation.STRONGLY_TYPED)
        path = "strongly-typed"
    else:
        path = "implicit-calibrator" if implicit else "weakly-typed+flags"
    if hasattr(creation, "EXPLICIT_BATCH"):  # TensorRT 8.x needs it; deprecated (no-op) later
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(info.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"{info.path}: the {flavour} ONNX parser rejected the file: "
                               f"{errors[0].splitlines()[0] if errors else 'no error reported'}"
                               + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    config = builder.create_builder_config()
    flags_used: dict[str, Any] = {"strongly_typed": strongly_typed}
    if not strongly_typed:
        if info.precision == "fp16" or implicit:
            if hasattr(trt.BuilderFlag, "FP16"):
                config.set_flag(trt.BuilderFlag.FP16)
                flags_used["fp16"] = True
        if info.precision == "int8" or implicit:
            if not hasattr(trt.BuilderFlag, "INT8"):
                raise EngineBuildError(f"{flavour} {trt.__version__} has neither STRONGLY_TYPED nor the INT8 flag")
            config.set_flag(trt.BuilderFlag.INT8)
            flags_used["int8"] = True
    if implicit:
        config.int8_calibrator = _cache_calibrator(trt, Path(options.calib_cache).read_text())
    profile = builder.create_optimization_profile()
    profiles = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise EngineBuildError(f"{info.path}: input {tensor.name} has dynamic non-batch dimensions {tensor.shape}")
        shapes = [(b,) + rest for b in (options.min_batch, options.opt_batch, options.max_batch)]
        profile.set_shape(tensor.name, *shapes)
        profiles.append({"input": tensor.name, "min": list(shapes[0]), "opt": list(shapes[1]), "max": list(shapes[2])})
    config.add_optimization_profile(profile)
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
        flags_used["workspace_mib"] = options.workspace_mib
    if options.version_compatible:
        if not hasattr(trt.BuilderFlag, "VERSION_COMPATIBLE"):
            raise EngineBuildError(f"{flavour} {trt.__version__} cannot build version-compatible engines")
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    flags_used["version_compatible"] = options.version_compatible
    if options.hardware_compatibility != "none":
        if not hasattr(trt, "HardwareCompatibilityLevel"):
            raise EngineBuildError(f"{flavour} {trt.__version__} has no hardware compatibility levels")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    flags_used["hardware_compatibility"] = options.hardware_compatibility
    if options.dla_core is not None:
        if not hasattr(trt, "DeviceType") or not hasattr(config, "DLA_core"):
            raise EngineBuildError(f"{flavour} {trt.__version__} has no DLA support")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        flags_used.update(dla_core=options.dla_core, gpu_fallback=options.gpu_fallback)
    timing_cache = None
    if options.timing_cache is not None and hasattr(config, "create_timing_cache"):
        previous = Path(options.timing_cache).read_bytes() if Path(options.timing_cache).is_file() else b""
        timing_cache = config.create_timing_cache(previous)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)
        flags_used["timing_cache"] = str(options.timing_cache)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    device = _device(trt)
    log(f"building {out.name} with {flavour} {trt.__version__}: {info.precision}, path {path}, batch "
        f"{options.min_batch}/{options.opt_batch}/{options.max_batch}, "
        f"{'GPU ' + device['name'] if device else 'no GPU (ahead-of-time build)'}")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(f"{info.path}: {flavour} could not build an engine: "
                               f"{logger.errors[-1] if logger.errors else 'no error reported'}")
    data = bytes(serialized)
    if timing_cache is not None:
        write_bytes_atomic(Path(options.timing_cache), bytes(timing_cache.serialize()))
    spec = info.spec.to_dict() if info.spec else {}
    golden_entry = None
    if golden is not None:
        from export.golden import write_golden

        golden_entry = write_golden(out, *golden)
    manifest = EngineManifest(
        plan_sha256=hashlib.sha256(data).hexdigest(), plan_bytes=len(data), source_onnx=str(info.path),
        source_sha256=info.sha256, flavour=flavour, trt_version=trt.__version__,
        precision="int8-implicit" if implicit else info.precision, quantization_path=path, profiles=profiles,
        build_flags=flags_used, spec=spec, device=device, jetson=_jetson(), golden=golden_entry,
        calibration_sha256=(sha256_file(Path(options.calib_cache)) if implicit else info.calibration_sha256),
        build_seconds=round(seconds, 3), rebuild_command=rebuild_command(info.path, out, options.cli_args()),
    )
    # Plan first, manifest last: an interrupted build leaves no manifest, and preflight refuses the plan.
    write_bytes_atomic(out, data)
    write_text_atomic(manifest_path(out), manifest.to_json())
    preflight(out)  # verify what landed
    log(f"built {out} ({len(data) / 1e6:.2f} MB) in {seconds:.1f} s")
    return out, manifest


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.engine", description=describe(__doc__))
    p.add_argument("--onnx", type=Path, required=True, help="the ONNX file (its precision is in the file)")
    p.add_argument("--out", type=Path, default=None, help="plan path (default: the ONNX name with .plan)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="builder workspace limit")
    p.add_argument("--timing-cache", type=Path, default=None, help="read and update this timing cache file")
    p.add_argument("--dla-core", type=int, default=None, help="build for this DLA core (Jetson AGX/NX)")
    p.add_argument("--gpu-fallback", action="store_true", help="with --dla-core: layers DLA cannot run go to the GPU")
    p.add_argument("--version-compatible", action="store_true", help="engine loadable by later TensorRT versions")
    p.add_argument("--hardware-compatibility", choices=HARDWARE_LEVELS, default="none",
                   help="ampere+: one engine for every Ampere-or-newer GPU")
    p.add_argument("--calib-cache", type=Path, default=None,
                   help="implicit INT8 from the FP32 file and this cache (TensorRT ≤ 10 only)")
    p.add_argument("--flavour", choices=("tensorrt", "tensorrt_rtx"), default=None,
                   help="which TensorRT to use (default: tensorrt if it imports, else tensorrt_rtx)")
    p.add_argument("--force", action="store_true", help="rebuild even when the existing plan is current")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = BuildOptions(args.min_batch, args.opt_batch, args.max_batch, args.workspace, args.timing_cache,
                               args.dla_core, args.gpu_fallback, args.version_compatible,
                               args.hardware_compatibility, args.calib_cache, args.flavour)
        log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
        if args.force:
            from export.golden import golden_from_calibration

            plan, manifest = build_engine(args.onnx, args.out, options, golden_from_calibration(args.onnx), log)
        else:
            from export.engine_cache import ensure_engine

            plan, manifest, _ = ensure_engine(args.onnx, args.out, options, log)
    except (EngineBuildError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(manifest.to_json(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
