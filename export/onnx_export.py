"""PyTorch → ONNX (FP32): dynamic batch axis, pinned opset, checked, spec embedded and beside it.

``<out>/<name>.fp32.onnx`` carries the ModelSpec in ``metadata_props`` and ``<out>/<name>.json``
holds the same spec, so the runtime finds it either way.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import onnx
import torch
from torch import nn

from formats.artifacts import PRECISION_KEY, Artifacts, Precision
from formats.errors import RuntimeToolkitError
from formats.logs import quiet_logs
from formats.writer import Kind, artifact_path
from runtime import __version__ as toolkit_version
from runtime.spec import METADATA_KEY, ModelSpec

# Opset 17 is the newest that every TensorRT we target parses (8.6 on JetPack 6.0 included).
DEFAULT_OPSET = 17


class ExportError(RuntimeToolkitError):
    """The model could not be exported or the result failed the ONNX checker."""


class Uint8Input(nn.Module):
    """The model with the spec's ``(pixel * scale - mean) / std`` folded in front: it takes uint8 pixels.

    On a GPU box this sends 4× fewer bytes over the bus and moves normalisation onto the device;
    the spec of the folded model says ``input_dtype: uint8`` so the runtime only re-lays pixels out.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model = model
        shape = (1, spec.channels, 1, 1)
        mean = torch.tensor(spec.mean, dtype=torch.float32).expand(spec.channels).reshape(shape)
        std = torch.tensor(spec.std, dtype=torch.float32).expand(spec.channels).reshape(shape)
        # (x * scale - mean) / std == x * (scale / std) - mean / std: one multiply-add on the device
        self.register_buffer("gain", torch.tensor(spec.scale, dtype=torch.float32) / std)
        self.register_buffer("offset", mean / std)

    def forward(self, x):
        return self.model(x.to(torch.float32) * self.gain - self.offset)


def uint8_form(model: nn.Module, spec: ModelSpec) -> tuple[nn.Module, ModelSpec]:
    """(folded model, its spec): ``<name>_u8`` taking uint8 pixels in the same layout."""
    from dataclasses import replace

    from runtime.spec import InputDType

    return Uint8Input(model.eval(), spec).eval(), replace(spec, input_dtype=InputDType.UINT8)


def to_onnx_proto(model: nn.Module, spec: ModelSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    model = model.eval()
    dtype = torch.uint8 if spec.input_dtype.value == "uint8" else torch.float32
    example = torch.zeros((2,) + spec.input_shape, dtype=dtype)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if spec.dynamic_batch else None
    log = io.StringIO()
    try:
        # The exporter narrates its steps on stdout; keep it for the error message instead. The opset-18 → 17
        # down-conversion is expected; the exporter logs it as a warning each time.
        with contextlib.redirect_stdout(log), quiet_logs("torch.onnx", "onnxscript"):
            program = torch.onnx.export(
                model,
                (example,),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=[spec.input_name],
                output_names=[spec.output_name],
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {spec.name}: {exc}\n{log.getvalue()[-2000:]}") from exc
    proto = program.model_proto
    proto.producer_name = "edge-toolkit"
    proto.producer_version = toolkit_version
    onnx.helper.set_model_props(proto, {METADATA_KEY: spec.to_json(), PRECISION_KEY: Precision.FP32.value})
    return proto


def check_and_infer(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(proto, full_check=True)
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{source}: exported graph fails the ONNX checker: {exc}") from exc


def save_onnx(proto: onnx.ModelProto, path: Path) -> Path:
    with artifact_path(path, Kind.ONNX) as tmp:
        onnx.save(proto, tmp)
    onnx.checker.check_model(str(path))  # verify what landed on disk
    return Path(path)


def export_fp32(
    model: nn.Module, spec: ModelSpec, out_dir: Path, opset: int = DEFAULT_OPSET, uint8_input: bool = False
) -> Path:
    """Write ``<out_dir>/<name>.fp32.onnx`` and ``<out_dir>/<name>.json``; returns the ONNX path.

    ``uint8_input``: fold the normalisation into the graph and write ``<name>_u8.fp32.onnx`` and
    ``<name>_u8.json`` instead (the spec's name stays the model's; only the files differ)."""
    out_dir = Path(out_dir)
    if uint8_input:
        model, spec = uint8_form(model, spec)
    try:  # the spec already refuses path-like names; this is the writer's own containment check
        artifacts = Artifacts(out_dir, spec.name).uint8() if uint8_input else Artifacts(out_dir, spec.name)
        path, spec_path = artifacts.onnx(Precision.FP32), artifacts.spec
    except ValueError as exc:
        raise ExportError(f"spec name {spec.name!r}: {exc}") from None
    proto = check_and_infer(to_onnx_proto(model, spec, opset), str(path))
    save_onnx(proto, path)
    spec.save(spec_path)
    return path
