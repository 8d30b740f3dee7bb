"""What the builder needs to know about an ONNX file before TensorRT sees it (``inspect_onnx``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.options import EngineBuildError
from formats.artifacts import (
    CALIBRATION_SHA256_KEY,
    ONNX_PRECISIONS,
    PRECISION_KEY,
    Artifacts,
    Precision,
    plan_beside,
)
from formats.errors import ArtifactNameError
from formats.files import sha256_file
from runtime.spec import METADATA_KEY, ModelSpec


@dataclass
class OnnxInfo:
    path: Path
    sha256: str
    precision: str
    spec: ModelSpec | None
    calibration_sha256: str | None
    metadata: dict[str, str] = field(default_factory=dict)


def _not_found(path: Path) -> EngineBuildError:
    """A missing FP16/INT8 file usually means calibration has not run in that folder yet: say so."""
    try:
        names = Artifacts.of(path)
    except ArtifactNameError:
        return EngineBuildError(f"{path}: ONNX file not found")
    written_by_calibration = {names.onnx(p) for p in ONNX_PRECISIONS if p is not Precision.FP32} | {names.prep_onnx}
    if path not in written_by_calibration:
        return EngineBuildError(f"{path}: ONNX file not found; export the model first (`edge export --checkpoint ...`)")
    before = "" if names.onnx(Precision.FP32).is_file() else "export the model (`edge export --checkpoint ...`), then "
    return EngineBuildError(
        f"{path}: not found; the fp16 and int8 files are written by calibration: {before}run "
        f"`edge calibrate --model {names.model} --artifacts {names.folder}` first "
        "(with --data-dir where the data is not in ./data)"
    )


def inspect_onnx(path: Path, calib_cache: Path | None = None) -> OnnxInfo:
    """Read the file, refuse what the TensorRT parser would choke on, with our own message; refuse an ONNX file
    or ``calib_cache`` that its folder's calibration run file does not record (``formats.calibration_run``)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise _not_found(path)
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # DecodeError, ValidationError, …
        raise EngineBuildError(
            f"{path}: not a valid ONNX model ({str(exc).splitlines()[0][:200]}); re-export it with `python -m export`"
        ) from None
    inits = {t.name: t.data_type for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and inits.get(node.input[0]) == onnx.TensorProto.INT32:
            raise EngineBuildError(
                f"{path}: node {node.name!r} dequantizes an int32 bias ({node.input[0]}); the TensorRT ONNX parser "
                "rejects int32-bias Q/DQ (ONNX Runtime's default quantize_static output). Write the TensorRT "
                "int8 file with `python -m calibration --model NAME` (bias left in float)"
            )
        if node.domain == "com.microsoft":
            raise EngineBuildError(
                f"{path}: node {node.name!r} is ONNX Runtime's {node.op_type} (com.microsoft), "
                "which TensorRT cannot parse; this is the ONNX Runtime CPU form "
                "(*.int8.ort.onnx) — build from *.int8.onnx instead"
            )
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = ModelSpec.from_json(meta[METADATA_KEY], source=f"{path} metadata") if METADATA_KEY in meta else None
    if spec is not None:
        _check_spec(path, proto, spec)
    _check_calibration_run(path, meta.get(CALIBRATION_SHA256_KEY))
    _check_run_files(path, calib_cache)
    return OnnxInfo(
        path,
        sha256_file(path),
        meta.get(PRECISION_KEY, Precision.FP32.value),
        spec,
        meta.get(CALIBRATION_SHA256_KEY),
        meta,
    )


def default_plan_path(onnx_path: Path) -> Path:
    return plan_beside(onnx_path)


@dataclass
class _GraphIO:
    """The graph's inputs and outputs as the runtime's TensorInfo, so the runtime's spec check applies as is."""

    inputs: list
    outputs: list


def _check_spec(path: Path, proto, spec: ModelSpec) -> None:
    """The spec that will go into the manifest must describe this graph (an NHWC graph with an NCHW spec used to
    build, and fail only on the device)."""
    import onnx

    from formats.errors import SpecError
    from runtime.backends.base import TensorInfo
    from runtime.model import check_spec_matches

    inits = {t.name for t in proto.graph.initializer}

    def infos(values) -> list:
        return [
            TensorInfo(
                v.name,
                onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type),
                tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim),
            )
            for v in values
            if v.name not in inits
        ]

    try:
        check_spec_matches(spec, _GraphIO(infos(proto.graph.input), infos(proto.graph.output)), str(path))
    except SpecError as exc:
        raise EngineBuildError(str(exc)) from None


def _check_run_files(path: Path, calib_cache: Path | None) -> None:
    from formats.calibration_run import CalibrationRunError, check_run

    cache = Path(calib_cache) if calib_cache else None
    try:
        check_run(Artifacts.of(path), [path])
        if cache is not None and Artifacts.of(cache).calib_cache == cache:
            check_run(Artifacts.of(cache), [cache])
    except CalibrationRunError as exc:
        raise EngineBuildError(str(exc)) from None


def _check_calibration_run(path: Path, stamped: str | None) -> None:
    """A calibrated ONNX must come from the calibration set beside it: after an interrupted or concurrent
    calibration the new set can sit beside old variants, and a cached engine of the old run would be reused."""
    import json

    if not stamped:
        return
    manifest = Artifacts.of(path).calibration_manifest
    if not manifest.is_file():
        return  # a bundle or a folder without the set: nothing to compare with
    try:
        current = json.loads(manifest.read_text(encoding="utf-8")).get("sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise EngineBuildError(f"{manifest}: unreadable calibration manifest ({exc}); calibrate again") from None
    if current != stamped:
        raise EngineBuildError(
            f"{path}: calibrated on set {stamped[:12]}… but {manifest.name} beside it describes "
            f"set {str(current)[:12]}…; the folder mixes two calibration runs: run `python -m "
            "calibration` again before building"
        )
