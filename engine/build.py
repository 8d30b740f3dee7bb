"""ONNX → TensorRT plan for TensorRT 8.6 → 11 and TensorRT-RTX, in four stages: network, config, build, write.

The path is chosen by capability and logged:

- ``strongly-typed``: the network is created STRONGLY_TYPED where that flag exists (TensorRT ≥ 9,
  TensorRT-RTX); precision comes from the ONNX file (fp32 / fp16 / int8 Q/DQ).
- ``weakly-typed+flags``: older TensorRT (8.6): the FP16 / INT8 builder flags the file's precision needs.
- ``implicit-calibrator``: ``--calib-cache`` on an FP32 file where ``IInt8EntropyCalibrator2`` exists
  (TensorRT ≤ 10): the cache (``python -m calibration`` writes it) is read by a calibrator, its
  header re-tagged for this TensorRT version.

FP32 plans are built with TF32 off unless ``--tf32`` (TensorRT turns it on by default on Ampere and newer,
Orin included, which moves FP32 logits by ~1e-2). The plan is written atomically with ``<plan>.json`` (the
manifest, which records every flag) and ``<plan>.golden.npz`` (real calibration samples and their FP32
outputs) for ``runtime.infer --self-test``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.onnx_info import OnnxInfo, default_plan_path, inspect_onnx
from engine.options import BuildOptions, EngineBuildError
from engine.trt_hooks import (
    build_device,
    cache_calibrator,
    dla_layer_placement,
    engine_layers,
    jetson_info,
    make_logger,
    progress_monitor,
    warnings_summary,
)
from formats.artifacts import Precision, plan_golden, plan_manifest
from formats.engine_manifest import (
    BuildFlags,
    Device,
    EngineManifest,
    Flavour,
    HardwareCompatibility,
    Jetson,
    Profile,
    describe_foreign,
    identify_bytes,
    preflight,
    rebuild_command,
)
from formats.errors import ModelLoadError
from formats.files import sha256_file
from formats.writer import Kind, check_replace, write_artifact
from runtime.trt_import import import_tensorrt

_logger = logging.getLogger(__name__)


@dataclass
class Network:
    """Stage 1's result: the parsed network and what it was created as."""

    trt: Any
    flavour: Flavour
    logger: Any
    builder: Any
    network: Any
    path: str  # "strongly-typed" | "weakly-typed+flags" | "implicit-calibrator"
    implicit: bool


def parse_network(info: OnnxInfo, options: BuildOptions) -> Network:
    """Stage 1: import TensorRT, create the network as the capability allows, parse the ONNX file."""
    try:
        trt, flavour = import_tensorrt(options.flavour)
    except ModelLoadError as exc:
        raise EngineBuildError(str(exc)) from None
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    implicit = options.calib_cache is not None
    if implicit and not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineBuildError(
            f"--calib-cache needs the implicit INT8 path, which {flavour} {trt.__version__} does "
            "not have (no calibrator classes: TensorRT 11 and TensorRT-RTX are strongly typed); "
            "build the explicit file *.int8.onnx instead"
        )
    if implicit and info.precision != Precision.FP32:
        raise EngineBuildError(
            f"--calib-cache goes with the FP32 file (the cache holds its ranges), not a "
            f"{info.precision} file; pass *.prep.onnx or *.fp32.onnx"
        )
    creation = trt.NetworkDefinitionCreationFlag
    flags = 0
    strongly_typed = hasattr(creation, "STRONGLY_TYPED") and not implicit
    if strongly_typed:
        flags |= 1 << int(creation.STRONGLY_TYPED)
    if hasattr(creation, "EXPLICIT_BATCH"):  # TensorRT 8.x needs it; deprecated (no-op) later
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(info.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"{info.path}: the {flavour} ONNX parser rejected the file: "
            f"{errors[0].splitlines()[0] if errors else 'no error reported'}"
            + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        )
    path = "strongly-typed" if strongly_typed else ("implicit-calibrator" if implicit else "weakly-typed+flags")
    return Network(trt, flavour, logger, builder, network, path, implicit)


def _profile(net: Network, info: OnnxInfo, options: BuildOptions):
    profile = net.builder.create_optimization_profile()
    shapes_used = []
    for i in range(net.network.num_inputs):
        tensor = net.network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise EngineBuildError(f"{info.path}: input {tensor.name} has dynamic non-batch dimensions {tensor.shape}")
        shapes = [(b,) + rest for b in (options.min_batch, options.opt_batch, options.max_batch)]
        profile.set_shape(tensor.name, *shapes)
        shapes_used.append(
            {"input": tensor.name, "min": list(shapes[0]), "opt": list(shapes[1]), "max": list(shapes[2])}
        )
    return profile, shapes_used


def _precision_flags(net: Network, config, info: OnnxInfo, options: BuildOptions) -> dict:
    trt, flags = net.trt, {"strongly_typed": net.path == "strongly-typed"}
    if net.path != "strongly-typed":
        if info.precision == Precision.FP16 or net.implicit:
            if hasattr(trt.BuilderFlag, "FP16"):
                config.set_flag(trt.BuilderFlag.FP16)
                flags[Precision.FP16.value] = True
        if info.precision == Precision.INT8 or net.implicit:
            if not hasattr(trt.BuilderFlag, "INT8"):
                raise EngineBuildError(f"{net.flavour} {trt.__version__} has neither STRONGLY_TYPED nor the INT8 flag")
            config.set_flag(trt.BuilderFlag.INT8)
            flags[Precision.INT8.value] = True
    if hasattr(trt.BuilderFlag, "TF32"):
        precision = Precision.INT8_IMPLICIT.value if net.implicit else info.precision
        if options.tf32_for(precision):
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)
    return flags


def _dla(net: Network, config, info: OnnxInfo, options: BuildOptions) -> None:
    trt = net.trt
    if options.dla_core is None:
        return
    cores = int(getattr(net.builder, "num_DLA_cores", 0) or 0)
    if not hasattr(trt, "DeviceType") or not hasattr(config, "DLA_core") or cores == 0:
        raise EngineBuildError(
            f"--dla-core {options.dla_core}: {net.flavour} {trt.__version__} on this machine has "
            "no DLA cores (only Jetson AGX Orin, Orin NX and Xavier have them); build without "
            "--dla-core"
        )
    if options.dla_core >= cores:
        raise EngineBuildError(
            f"--dla-core {options.dla_core}: this Jetson has {cores} DLA core(s), numbered 0…{cores - 1}"
        )
    if info.precision == Precision.FP32 and not net.implicit:
        raise EngineBuildError(
            f"{info.path}: the DLA runs FP16 and INT8 only; build *.fp16.onnx or *.int8.onnx "
            "for it, or leave out --dla-core for this FP32 file"
        )
    if net.path == "strongly-typed" and not options.gpu_fallback:
        raise EngineBuildError(
            f"{info.path}: --dla-core {options.dla_core} on a strongly typed file needs --gpu-fallback: our "
            "fp16 and int8 (Q/DQ) files keep FP32 inputs and outputs and FP32 layers outside the Q/DQ pairs, "
            "which the DLA cannot run, so a DLA-only build fails; with --gpu-fallback those layers run on the "
            "GPU and the manifest's dla entry lists them"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = options.dla_core
    if options.gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


# A timing cache is TensorRT's own binary; these first bytes mean the path names some other file we must not
# overwrite (a calibration cache, a plan, an ONNX model, JSON, an archive, an image).
_NOT_A_TIMING_CACHE = (b"TRT-", b"ftrt", b"vtrt", b"\x08", b"{", b"PK", b"\x89PNG", b"\xff\xd8\xff", b"\x1f\x8b")


def _timing_cache(net: Network, config, options: BuildOptions):
    if options.timing_cache is None or not hasattr(config, "create_timing_cache"):
        return None
    path = Path(options.timing_cache)
    if path.is_dir():
        raise EngineBuildError(f"--timing-cache {path}: is a folder; give a file path (e.g. {path / 'timing.cache'})")
    previous = path.read_bytes() if path.is_file() else b""
    if previous and previous.startswith(_NOT_A_TIMING_CACHE):
        if previous.startswith(b"TRT-"):
            what = "a calibration cache"
        elif identify_bytes(previous):
            what = "a TensorRT plan"
        else:
            what = describe_foreign(previous[:16])
        raise EngineBuildError(
            f"--timing-cache {path}: that file is {what}, not a timing cache; it would be "
            "overwritten — give a new path such as timing.cache"
        )
    cache = config.create_timing_cache(previous)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineBuildError(
            f"--timing-cache {path}: {net.flavour} {net.trt.__version__} refused it (written by "
            "another TensorRT version or GPU, or not a timing cache); give a new path or delete it"
        )
    return cache


def configure(net: Network, info: OnnxInfo, options: BuildOptions) -> tuple[Any, dict, list, Any]:
    """Stage 2: builder config from the options. Returns (config, build flags, profiles, timing cache)."""
    trt, config = net.trt, net.builder.create_builder_config()
    flags = _precision_flags(net, config, info, options)
    profile, profiles = _profile(net, info, options)
    logged = len(net.logger.errors)
    if config.add_optimization_profile(profile) < 0:  # -1: TensorRT found the profile invalid
        said = net.logger.errors[logged:]
        raise EngineBuildError(
            f"{info.path}: {net.flavour} rejected the optimization profile {profiles}: "
            f"{said[0].splitlines()[0] if said else 'no error reported'}; "
            "check --min-batch ≤ --opt-batch ≤ --max-batch"
        )
    if net.implicit:
        config.int8_calibrator = cache_calibrator(trt, Path(options.calib_cache).read_text())
        if hasattr(config, "set_calibration_profile"):  # NvInfer.h: the calibrator needs a profile on dynamic shapes
            config.set_calibration_profile(profile)
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.version_compatible:
        if not hasattr(trt.BuilderFlag, "VERSION_COMPATIBLE"):
            raise EngineBuildError(f"{net.flavour} {trt.__version__} cannot build version-compatible engines")
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if options.hardware_compatibility is not HardwareCompatibility.NONE:
        if not hasattr(trt, "HardwareCompatibilityLevel"):
            raise EngineBuildError(f"{net.flavour} {trt.__version__} has no hardware compatibility levels")
        if jetson_info() is not None:
            raise EngineBuildError(
                "--hardware-compatibility: JetPack does not support hardware-compatible engines; "
                "build without it on the Jetson that runs the plan"
            )
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    _dla(net, config, info, options)
    timing_cache = _timing_cache(net, config, options)
    monitor = progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    flags.update(options.engine_flags(Precision.INT8_IMPLICIT.value if net.implicit else info.precision))
    if hasattr(trt.BuilderFlag, "TF32"):
        flags["tf32"] = bool(config.get_flag(trt.BuilderFlag.TF32))
    if timing_cache is not None:
        flags["timing_cache"] = str(options.timing_cache)
    return config, flags, profiles, timing_cache


def build_serialized(net: Network, config, info: OnnxInfo) -> tuple[bytes, float]:
    """Stage 3: TensorRT builds the plan. Returns (plan bytes, seconds)."""
    start = time.perf_counter()
    serialized = net.builder.build_serialized_network(net.network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineBuildError(
            f"{info.path}: {net.flavour} could not build an engine: "
            f"{net.logger.errors[-1] if net.logger.errors else 'no error reported'}"
        )
    return bytes(serialized), seconds


def build_engine(
    onnx_path: Path,
    out: Path | None = None,
    options: BuildOptions = BuildOptions(),
    golden: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[str], None] = _logger.info,
) -> tuple[Path, EngineManifest]:
    """Parse, configure, build, write ``out`` + manifest (+ golden I/O). Raises EngineBuildError."""
    info = inspect_onnx(onnx_path, options.calib_cache)
    out = Path(out) if out else default_plan_path(info.path)
    check_outputs(out)  # before minutes of building, not after
    net = parse_network(info, options)
    config, flags, profiles, timing_cache = configure(net, info, options)
    device = build_device()
    log(
        f"building {out.name} with {net.flavour} {net.trt.__version__}: {info.precision}, path {net.path}, batch "
        f"{options.min_batch}/{options.opt_batch}/{options.max_batch}, "
        f"{'GPU ' + device['name'] if device else 'no GPU (ahead-of-time build)'}"
    )
    data, seconds = build_serialized(net, config, info)
    extra = {"build_warnings": warnings_summary(net.logger.warnings)}
    if options.dla_core is not None:
        extra["dla"] = dla_layer_placement(config, net.network)
        if device is not None:  # the inspector needs the plan deserialized: a GPU (a Jetson, for DLA)
            layers = engine_layers(net.trt, net.logger, data)
            if layers is not None:
                extra["layers"] = layers
    manifest = EngineManifest(
        plan_sha256=hashlib.sha256(data).hexdigest(),
        plan_bytes=len(data),
        source_onnx=str(info.path),
        source_sha256=info.sha256,
        flavour=Flavour(net.flavour),
        trt_version=net.trt.__version__,
        precision=Precision.INT8_IMPLICIT if net.implicit else Precision(info.precision),
        quantization_path=net.path,
        profiles=tuple(Profile.from_dict(profile) for profile in profiles),
        build_flags=BuildFlags.from_dict(flags),
        spec=info.spec.to_dict() if info.spec else {},
        device=Device.from_dict(device),
        jetson=Jetson.from_dict(jetson_info()),
        calibration_sha256=(sha256_file(Path(options.calib_cache)) if net.implicit else info.calibration_sha256),
        build_seconds=round(seconds, 3),
        rebuild_command=rebuild_command(info.path, out, options.cli_args()),
        extra=extra,
    )
    write_plan(out, data, manifest, golden, timing_cache, options)
    warned = extra["build_warnings"]
    log(
        f"built {out} ({len(data) / 1e6:.2f} MB) in {seconds:.1f} s"
        + (
            f"; {warned['count']} TensorRT warning(s), {warned['fallbacks']} about a fallback"
            if warned["count"]
            else ""
        )
    )
    return out, manifest


def check_outputs(out: Path) -> None:
    """Refuse (unless ``--force``) a plan path, manifest or golden path that holds a file of another kind."""
    check_replace(out, Kind.PLAN)
    check_replace(plan_manifest(out), Kind.ENGINE_MANIFEST)
    check_replace(plan_golden(out), Kind.GOLDEN)


def write_plan(out: Path, data: bytes, manifest: EngineManifest, golden, timing_cache, options: BuildOptions) -> None:
    """Stage 4: golden I/O, plan, then manifest last — an interrupted build leaves no manifest, and preflight
    refuses a plan without one. What landed is verified by preflight."""
    written: list[Path] = []
    try:
        if golden is not None:
            from engine.golden import write_golden

            manifest.golden = write_golden(out, *golden)
            written.append(Path(out).with_name(manifest.golden.file))
        write_artifact(out, data, Kind.PLAN)
        write_artifact(plan_manifest(out), manifest.to_json(), Kind.ENGINE_MANIFEST)
    except BaseException:  # a full disk: no orphan golden file beside no plan or manifest
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if timing_cache is not None:
        write_artifact(Path(options.timing_cache), bytes(timing_cache.serialize()), Kind.TIMING_CACHE)
    preflight(out)
