"""PyTorch → ONNX (FP32): dynamic batch axis, pinned opset, checked, spec embedded and beside it.

``<out>/<name>.fp32.onnx`` carries the ModelSpec in ``metadata_props`` and ``<out>/<name>.json``
holds the same spec, so the runtime finds it either way.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import onnx
import torch
from torch import nn

from runtime.atomic import atomic_path
from runtime.spec import METADATA_KEY, ModelSpec
from runtime import __version__ as toolkit_version

# Opset 17 is the newest that every TensorRT we target parses (8.6 on JetPack 6.0 included).
DEFAULT_OPSET = 17


class ExportError(Exception):
    """The model could not be exported or the result failed the ONNX checker."""


def to_onnx_proto(model: nn.Module, spec: ModelSpec, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    model = model.eval()
    example = torch.zeros((2,) + spec.input_shape, dtype=torch.float32)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if spec.dynamic_batch else None
    log = io.StringIO()
    try:
        # The exporter narrates its steps on stdout; keep it for the error message instead.
        with contextlib.redirect_stdout(log), _quiet_loggers("torch.onnx", "onnxscript"):
            program = torch.onnx.export(
                model, (example,), None, dynamo=True, opset_version=opset,
                input_names=[spec.input_name], output_names=[spec.output_name],
                dynamic_shapes=dynamic, verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {spec.name}: {exc}\n{log.getvalue()[-2000:]}") from exc
    proto = program.model_proto
    proto.producer_name = "edge-toolkit"
    proto.producer_version = toolkit_version
    onnx.helper.set_model_props(proto, {METADATA_KEY: spec.to_json(), "edge_toolkit.precision": "fp32"})
    return proto


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    # The opset-18 → 17 down-conversion is expected; the exporter logs it as a warning each time.
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def check_and_infer(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(proto, full_check=True)
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{source}: exported graph fails the ONNX checker: {exc}") from exc


def save_onnx(proto: onnx.ModelProto, path: Path) -> Path:
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    onnx.checker.check_model(str(path))  # verify what landed on disk
    return Path(path)


def export_fp32(model: nn.Module, spec: ModelSpec, out_dir: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``<out_dir>/<name>.fp32.onnx`` and ``<out_dir>/<name>.json``; returns the ONNX path."""
    out_dir = Path(out_dir)
    path = out_dir / f"{spec.name}.fp32.onnx"
    proto = check_and_infer(to_onnx_proto(model, spec, opset), str(path))
    save_onnx(proto, path)
    spec.save(out_dir / f"{spec.name}.json")
    return path
