"""TensorRT execution (marker `tensorrt`: needs standard TensorRT and a GPU; no machine of this project has both).
What runs everywhere: a real TensorRT-RTX plan reaches the backend, passes preflight and is refused for lack of a
GPU with a clear message."""

import numpy as np
import pytest

from runtime.errors import ModelLoadError
from runtime.model import Classifier


def test_plan_without_gpu_is_refused_clearly(trained_mnist, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    from engine.build import BuildOptions, build_engine
    from runtime import cuda

    if cuda.device_count():
        pytest.skip("a GPU is visible; this test covers the no-GPU path")
    _, onnx_path = trained_mnist["mnist_mlp"]
    plan, _ = build_engine(onnx_path, tmp_path / "m.fp32.plan", BuildOptions(1, 4, 16, flavour="tensorrt_rtx"),
                           log=lambda *_: None)
    with pytest.raises(ModelLoadError, match="no CUDA GPU visible"):
        with Classifier.from_path(plan):
            pass


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_matches_onnx_runtime_and_splits_big_batches(trained_mnist, mnist_test, tmp_path):
    from engine.build import BuildOptions, build_engine
    from runtime.preprocess import normalize

    _, onnx_path = trained_mnist["mnist_cnn"]
    plan, _ = build_engine(onnx_path, tmp_path / "m.fp32.plan", BuildOptions(1, 8, 16, flavour="tensorrt"))
    from runtime.spec import ModelSpec

    batch = normalize(mnist_test.images[:40], ModelSpec.load(onnx_path.parent / "mnist_cnn.json"))
    with Classifier.from_path(onnx_path) as ort_clf, Classifier.from_path(plan) as trt_clf:
        expected = ort_clf.run(batch)
        got = trt_clf.run(batch)  # 40 > max batch 16: three chunks
    np.testing.assert_allclose(got, expected, atol=1e-3)
