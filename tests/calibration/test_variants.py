"""The variant writers on a really trained MNIST CNN: what each file contains, and that TensorRT parses it."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration.variants import PRECISION_KEY, Precision, shallow_convolutions
from formats.artifacts import ONNX_PRECISIONS, Artifacts
from runtime.backends.onnxruntime import DISABLED_OPTIMIZERS_KEY
from runtime.spec import METADATA_KEY


def _props(proto):
    return {p.key: p.value for p in proto.metadata_props}


def test_fp16_has_half_weights_and_float_io(calibrated_cnn):
    folder, _ = calibrated_cnn
    proto = onnx.load(str(Artifacts(folder, "mnist_cnn").onnx(Precision.FP16)))
    weights = [t for t in proto.graph.initializer if len(t.dims) > 1]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _props(proto)[PRECISION_KEY] == "fp16" and METADATA_KEY in _props(proto)


def test_int8_is_symmetric_per_channel_with_float_bias(calibrated_cnn):
    folder, _ = calibrated_cnn
    proto = onnx.load(str(Artifacts(folder, "mnist_cnn").onnx(Precision.INT8)))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert dq
    for node in dq:
        assert inits[node.input[0]].dtype != np.int32 if node.input[0] in inits else True  # no int32 bias
        if len(node.input) > 2:
            assert inits[node.input[2]].dtype == np.int8 and not inits[node.input[2]].any()  # zero point 0
    for conv in (n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")):
        producer = next(n for n in dq if n.output[0] == conv.input[1])
        scale = inits[producer.input[1]]
        out_channels = inits[producer.input[0]].shape[0]
        assert scale.shape == (out_channels,)  # per-channel weights
        assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32  # bias left in float
    assert _props(proto)[PRECISION_KEY] == "int8"


def test_ort_form_uses_uint8_operator_kernels_and_keeps_the_shallow_conv_float(calibrated_cnn):
    folder, result = calibrated_cnn
    proto = onnx.load(str(Artifacts(folder, "mnist_cnn").onnx(Precision.INT8_ORT)))
    ops = [n.op_type for n in proto.graph.node]
    assert "QLinearConv" in ops and ops[0] == "Conv"  # the 1-channel first conv stays FP32
    shallow = shallow_convolutions(folder / "mnist_cnn.prep.onnx")
    assert shallow[0] == "node_conv2d" and "node_max_pool2d" in shallow  # and the pool after it
    q = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear")
    zero = next(t for t in proto.graph.initializer if t.name == q.input[2])
    assert zero.data_type == onnx.TensorProto.UINT8
    assert _props(proto)[DISABLED_OPTIMIZERS_KEY] == "QDQPropagationTransformer"
    assert _props(proto)["edge_toolkit.calibration_sha256"] == result.calibration_sha256


def test_every_variant_keeps_accuracy_on_real_test_digits(calibrated_cnn, mnist_test):
    from runtime.model import Classifier
    from runtime.preprocess import normalize

    folder, _ = calibrated_cnn
    accuracies = {}
    for precision in ONNX_PRECISIONS:
        with Classifier.from_path(Artifacts(folder, "mnist_cnn").onnx(precision)) as clf:
            logits = clf.run(normalize(mnist_test.images[:2000], clf.spec), 500)
        accuracies[precision] = float((logits.argmax(1) == mnist_test.labels[:2000]).mean())
    assert accuracies[Precision.FP32] > 0.85  # one epoch on 12k digits
    for precision, acc in accuracies.items():
        assert acc >= accuracies[Precision.FP32] - 0.01, (precision, accuracies)


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.FP16, Precision.INT8])
def test_tensorrt_rtx_parser_accepts_each_tensorrt_variant(calibrated_cnn, precision):
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    folder, _ = calibrated_cnn
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(Artifacts(folder, "mnist_cnn").onnx(precision)))
    assert ok, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert network.num_layers > 0
