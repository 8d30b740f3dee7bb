"""The CUDA execution provider path on a real GPU (marker `gpu`; also skipped without onnxruntime-gpu).

FP32 on the CUDA EP uses TF32 by default (ONNX Runtime's ``use_tf32``): logits differ from the CPU's
by up to ~1e-2 (5e-3…8e-3 measured on an H100), so parity here is a TF32-aware tolerance plus 100 %
top-1 agreement on real digits; with ``tf32=False`` the tolerance is FP32's.
"""

import numpy as np
import onnxruntime
import pytest

from runtime.backends.onnxruntime import OnnxRuntimeBackend
from runtime.providers import CudaOptions

pytestmark = pytest.mark.gpu  # the central skip (no GPU visible) comes first, then this module's own
TF32_ATOL, FP32_ATOL = 2e-2, 1e-3


@pytest.fixture(autouse=True)
def _cuda_ep():
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip(
            "onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu (on the GPU test machine "
            "benchmarks/gpu_ort_check.sh puts it on PYTHONPATH)"
        )


@pytest.fixture(scope="module")
def cnn(trained_mnist):
    return trained_mnist["mnist_cnn"][1]


@pytest.fixture(scope="module")
def digits(trained_mnist, mnist_test):
    from runtime.preprocess import preprocess

    spec = trained_mnist["mnist_cnn"][0].spec
    return np.stack([preprocess(image, spec) for image in mnist_test.images[:64]])


@pytest.fixture(scope="module")
def cpu_logits(cnn, digits):
    with OnnxRuntimeBackend(cnn) as cpu:
        return {n: cpu.infer({"input": digits[:n]})["logits"] for n in (1, 5, 64)}


def _agree(got, want, atol):
    assert np.abs(got - want).max() <= atol, f"max |Δ| {np.abs(got - want).max():.2e} > {atol}"
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("tf32, atol", [(None, TF32_ATOL), (False, FP32_ATOL)])
def test_cuda_ep_with_io_binding_matches_the_cpu(cnn, digits, cpu_logits, tf32, atol):
    with OnnxRuntimeBackend(cnn, providers="cuda", cuda=CudaOptions(tf32=tf32)) as gpu:
        execution = gpu.execution()
        assert execution["providers"][0] == "CUDAExecutionProvider" and execution["io_binding"]
        assert execution["tf32"] is (tf32 is not False)  # as ONNX Runtime resolved use_tf32
        for n in (1, 5, 64, 5):
            _agree(gpu.infer({"input": digits[:n]})["logits"], cpu_logits[n], atol)
        print("staging:", execution["staging"])  # pinned or pageable (and why), for the check's log


def test_cuda_graphs_per_batch_size_and_plain_io_binding_for_the_rest(cnn, digits, cpu_logits):
    options = CudaOptions(cuda_graph=True, graph_batches=(1, 64))
    with OnnxRuntimeBackend(cnn, providers="cuda", cuda=options) as gpu:
        for _ in range(3):  # warm-up runs, capture, then replays: every one must be right
            for n in (1, 5, 64):
                _agree(gpu.infer({"input": digits[:n]})["logits"], cpu_logits[n], TF32_ATOL)
        # replay reads the same device buffers with new contents
        shuffled = digits[::-1].copy()
        with OnnxRuntimeBackend(cnn) as cpu:
            _agree(gpu.infer({"input": shuffled})["logits"], cpu.infer({"input": shuffled})["logits"], TF32_ATOL)
        report = gpu.execution()
        assert report["cuda_graph"] and sorted(report["graphs"]) == ["1x1x28x28", "64x1x28x28"]
