"""Writers for the precision variants: ``<name>.fp16.onnx``, ``<name>.int8.onnx``, ``<name>.int8.ort.onnx``.

- FP16: ONNX Runtime's ``convert_float_to_float16`` with FP32 inputs and outputs (casts at the
  edges); any node whose calibrated activations come near the FP16 limit stays FP32.
- INT8 for TensorRT: explicit Q/DQ, symmetric int8 activations and weights (zero point 0),
  per-channel weights, bias left in float (``QuantizeBias: False``; an int32 bias
  DequantizeLinear is rejected by the TensorRT ONNX parser), Q/DQ only around the ops
  TensorRT runs in int8 (Conv, Gemm, MatMul); TensorRT fuses them with their neighbours.
- INT8 for ONNX Runtime on the CPU: the same ranges, uint8 activations (the U8S8 kernels x86
  VNNI/AMX runs fastest), int8 per-channel weights and int32 bias, in ONNX Runtime's
  operator form (QLinearConv, QGemm…), where ONNX Runtime's CPU kernels need no pattern matching.

Each file carries the ModelSpec and its precision in ``metadata_props``, passes the ONNX checker
and is written atomically.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
from onnxruntime.transformers.float16 import convert_float_to_float16
from onnxruntime.transformers.onnx_model import OnnxModel

from calibration.ranges import amax
from export.onnx_export import save_onnx
from formats.artifacts import FP16_KEPT_FP32_KEY, INT8_EXCLUDED_KEY, PRECISION_KEY, Precision  # re-exported here
from formats.logs import quiet_logs
from runtime.backends.onnxruntime import DISABLED_OPTIMIZERS_KEY
from runtime.spec import METADATA_KEY, ModelSpec

FP16_MAX = 65504.0
# Activations above this share of the FP16 maximum (as calibrated) keep their node in FP32: the
# calibration set is a sample, real inputs can go further.
FP16_HEADROOM = 0.25
TENSORRT_INT8_OPS = ("Conv", "Gemm", "MatMul")
# ONNX Runtime's int8 convolution is slower than its FP32 one when each output sums few products
# (a first layer on 1 or 3 channels: 9 or 27 per 3×3 window); those stay FP32 in the CPU form.
MIN_INT8_REDUCTION = 32


WRITERS = {}  # Precision → writer, filled below


def _stamp(proto: onnx.ModelProto, spec: ModelSpec, precision: Precision, extra: dict[str, str] | None = None) -> None:
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({METADATA_KEY: spec.to_json(), PRECISION_KEY: precision.value, **(extra or {})})
    onnx.helper.set_model_props(proto, props)


def fp16_blocked_nodes(proto: onnx.ModelProto, ranges: TensorsData | None) -> list[str]:
    """Nodes with an input or output whose calibrated magnitude is too close to the FP16 limit."""
    if ranges is None:
        return []
    limit = FP16_MAX * FP16_HEADROOM
    big = {name for name, value in amax(ranges).items() if value > limit}
    return [n.name for n in proto.graph.node if big.intersection(list(n.input) + list(n.output))]


def write_fp16(
    prepared: Path,
    spec: ModelSpec,
    out: Path,
    ranges: TensorsData | None = None,
    calibration: dict[str, str] | None = None,
) -> tuple[Path, list[str]]:
    proto = onnx.load(str(prepared))
    blocked = fp16_blocked_nodes(proto, ranges)
    half = convert_float_to_float16(proto, keep_io_types=True, node_block_list=blocked or None)
    OnnxModel.graph_topological_sort(half.graph, is_deterministic=True)  # the edge casts are appended last
    _stamp(half, spec, Precision.FP16, {FP16_KEPT_FP32_KEY: ",".join(blocked), **(calibration or {})})
    onnx.checker.check_model(half, full_check=True)
    return save_onnx(half, out), blocked


def quantizable_nodes(prepared: Path, op_types: Sequence[str] = TENSORRT_INT8_OPS) -> list[str]:
    return [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in op_types]


def shallow_convolutions(prepared: Path) -> list[str]:
    """Ungrouped Conv nodes whose reduction depth (in-channels × kernel area) is below MIN_INT8_REDUCTION,
    with the elementwise and pooling nodes that follow them up to the next Conv/Gemm/MatMul: left in
    FP32 together, so the first quantize happens right before an op with a fast int8 kernel (a uint8
    MaxPool cut off from the NHWC int8 convolutions runs a slow generic kernel)."""
    proto = onnx.load(str(prepared))
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names = []
    for node in proto.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if not (shape and group == 1 and math.prod(shape[1:]) < MIN_INT8_REDUCTION):
            continue
        names.append(node.name)
        follow = consumers.get(node.output[0], [])
        while len(follow) == 1 and follow[0].op_type in ("Relu", "Clip", "MaxPool", "AveragePool"):
            names.append(follow[0].name)
            follow = consumers.get(follow[0].output[0], [])
    return names


def _quantize(
    prepared: Path,
    ranges: TensorsData,
    out: Path,
    *,
    quant_format: QuantFormat,
    activation: QuantType,
    op_types: Sequence[str] | None,
    exclude: Sequence[str],
    extra: dict,
    only: Sequence[str] = (),
) -> None:
    # "consider pre-processing" and friends (logged to the root logger): done; quiet only during this call
    with quiet_logs("onnxruntime"), tempfile.TemporaryDirectory(prefix="edge-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(ranges, cache)  # quantize_static reads the ranges back instead of recalibrating
        quantize_static(
            str(prepared),
            str(out),
            None,
            quant_format=quant_format,
            op_types_to_quantize=list(op_types or []),
            per_channel=True,
            activation_type=activation,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=list(only),
            nodes_to_exclude=list(exclude),
            calibrate_method=ranges.calibration_method,
            calibration_cache_path=cache,
            extra_options=extra,
        )


@dataclass(frozen=True)
class _Int8Form:
    """What distinguishes one INT8 file from the other; ``_write_int8`` is their one skeleton."""

    precision: Precision
    quant_format: QuantFormat
    activation: QuantType
    op_types: Sequence[str] | None
    extra: dict
    metadata: dict  # stamped after the excluded nodes and the calibration stamp
    full_check: bool  # com.microsoft ops: no full_check (the checker has no schemas for them)


def _write_int8(
    form: _Int8Form,
    prepared: Path,
    ranges: TensorsData,
    spec: ModelSpec,
    out: Path,
    exclude: Sequence[str],
    calibration: dict[str, str] | None,
    only: Sequence[str],
) -> Path:
    with tempfile.TemporaryDirectory(prefix="edge-int8-") as tmp:
        raw = Path(tmp) / "quantized.onnx"
        _quantize(
            prepared,
            ranges,
            raw,
            quant_format=form.quant_format,
            activation=form.activation,
            op_types=form.op_types,
            exclude=exclude,
            only=only,
            extra=form.extra,
        )
        proto = onnx.load(str(raw))
    _stamp(proto, spec, form.precision, {INT8_EXCLUDED_KEY: ",".join(exclude), **(calibration or {}), **form.metadata})
    onnx.checker.check_model(proto, full_check=form.full_check)
    return save_onnx(proto, out)


_TENSORRT_INT8 = _Int8Form(
    Precision.INT8,
    QuantFormat.QDQ,
    QuantType.QInt8,
    TENSORRT_INT8_OPS,
    {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
    {},
    full_check=True,
)
# ONNX Runtime's QDQ propagation would move the first QuantizeLinear above the FP32 MaxPool that
# follows a shallow convolution, onto a uint8 NCHW pooling kernel 3× slower than the float one.
_ORT_INT8 = _Int8Form(
    Precision.INT8_ORT,
    QuantFormat.QOperator,
    QuantType.QUInt8,
    None,
    {"WeightSymmetric": True},
    {DISABLED_OPTIMIZERS_KEY: "QDQPropagationTransformer"},
    full_check=False,
)


def write_int8(
    prepared: Path,
    ranges: TensorsData,
    spec: ModelSpec,
    out: Path,
    exclude: Sequence[str] = (),
    calibration: dict[str, str] | None = None,
    only: Sequence[str] = (),
) -> Path:
    """The TensorRT-friendly explicit-quantization file (``only``: quantize just these nodes)."""
    return _write_int8(_TENSORRT_INT8, prepared, ranges, spec, out, exclude, calibration, only)


def write_int8_ort(
    prepared: Path,
    ranges: TensorsData,
    spec: ModelSpec,
    out: Path,
    exclude: Sequence[str] = (),
    calibration: dict[str, str] | None = None,
    only: Sequence[str] = (),
) -> Path:
    """The ONNX Runtime CPU file: uint8 activations, operator form, from the same ranges (shallow convolutions
    stay FP32)."""
    exclude = list(dict.fromkeys([*exclude, *shallow_convolutions(prepared)]))
    return _write_int8(_ORT_INT8, prepared, ranges, spec, out, exclude, calibration, only)


WRITERS.update({Precision.INT8: write_int8, Precision.INT8_ORT: write_int8_ort})
