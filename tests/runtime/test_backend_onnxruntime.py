import numpy as np
import pytest

from formats.errors import BackendInputError, ModelLoadError
from runtime.backends.onnxruntime import OnnxRuntimeBackend, SessionFromOnnx


@pytest.fixture(scope="module")
def onnx_path(trained_mnist):
    return trained_mnist["mnist_cnn"][1]


def test_construction_is_lazy_and_activate_loads(onnx_path):
    backend = OnnxRuntimeBackend(onnx_path)
    assert not backend.active and backend.session is None
    with backend:
        assert backend.active
        assert [t.describe() for t in backend.inputs] == ["input: float32[?, 1, 28, 28]"]
        assert backend.outputs[0].name == "logits"
    assert not backend.active and backend.session is None


def test_dynamic_batch_runs_any_size(onnx_path, mnist_test):
    with OnnxRuntimeBackend(onnx_path) as backend:
        for n in (1, 3, 17):
            x = np.zeros((n, 1, 28, 28), np.float32)
            assert backend.infer({"input": x})["logits"].shape == (n, 10)


@pytest.mark.parametrize(
    "feed, message",
    [
        ({}, r"missing \['input'\]"),
        ({"input": np.zeros((1, 1, 28, 28), np.float32), "extra": np.zeros(1)}, r"unexpected \['extra'\]"),
        ({"input": np.zeros((1, 1, 28, 28), np.float64)}, "dtype float64, expected float32"),
        (
            {"input": np.zeros((1, 3, 28, 28), np.float32)},
            r"shape \(1, 3, 28, 28\), expected input: float32\[\?, 1, 28, 28\]",
        ),
        ({"input": np.zeros((1, 28, 28), np.float32)}, "shape"),
        ({"input": np.zeros((0, 1, 28, 28), np.float32)}, "empty batch"),
        ({"input": [[1.0]]}, "expected a numpy array"),
    ],
)
def test_infer_checks_the_feed_against_the_io_table(onnx_path, feed, message):
    with OnnxRuntimeBackend(onnx_path) as backend:
        with pytest.raises(BackendInputError, match=message):
            backend.infer(feed)


def test_infer_before_activate_is_an_error(onnx_path):
    with pytest.raises(RuntimeError, match="not active"):
        OnnxRuntimeBackend(onnx_path).infer({"input": np.zeros((1, 1, 28, 28), np.float32)})


def test_files_that_are_not_models(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf model\xff" * 10)
    with pytest.raises(ModelLoadError, match="junk.onnx: ONNX Runtime cannot load this file as an ONNX model"):
        OnnxRuntimeBackend(junk).activate()
    with pytest.raises(ModelLoadError, match="missing.onnx: model file not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx").activate()


def test_unknown_provider_lists_the_available_ones(onnx_path):
    with pytest.raises(
        ModelLoadError,
        match=r"NoSuchExecutionProvider.*unknown execution provider.*this "
        r"onnxruntime has .*cpu \(CPUExecutionProvider\)",
    ):
        SessionFromOnnx(onnx_path, providers=["NoSuchExecutionProvider"])()


def test_a_loader_callable_is_accepted(onnx_path):
    loads = []

    def loader():
        loads.append(1)
        return SessionFromOnnx(onnx_path)()

    backend = OnnxRuntimeBackend(loader)
    assert loads == []
    with backend:
        assert loads == [1]
