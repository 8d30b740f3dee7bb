"""The `gpu` marker asks CUDA whether there is a GPU, not nvidia-smi or /dev/nvidia0 (a Jetson has no
/dev/nvidia0, containers often no nvidia-smi): gpu tests must run on the very devices they are for (issue 24)."""

import pytest

from tests import conftest


def test_a_gpu_cuda_sees_runs_gpu_tests_without_nvidia_smi_or_dev_nvidia0(monkeypatch):
    pytest.importorskip("cuda.bindings", reason="cuda-python not installed")
    from runtime import cuda

    monkeypatch.setattr(
        conftest.shutil if hasattr(conftest, "shutil") else cuda, "which", lambda _: None, raising=False
    )
    monkeypatch.setattr(cuda, "device_count", lambda: 1)  # a Jetson: CUDA sees its GPU, there is no /dev/nvidia0
    assert conftest._gpu_reason() is None


def test_a_failing_cuda_query_is_a_skip_reason_not_a_collection_error(monkeypatch):
    pytest.importorskip("cuda.bindings", reason="cuda-python not installed")
    from runtime import cuda

    def broken():
        raise cuda.CudaError("cudaGetDeviceCount failed: cudaErrorInsufficientDriver (35)")

    monkeypatch.setattr(cuda, "device_count", broken)
    assert "no usable CUDA GPU: cudaGetDeviceCount failed" in conftest._gpu_reason()
    monkeypatch.setattr(cuda, "device_count", lambda: 0)
    assert "device_count() is 0" in conftest._gpu_reason()
