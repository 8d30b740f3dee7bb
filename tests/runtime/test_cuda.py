"""The cuda-python layer on a real GPU (marker `gpu`: skipped where no GPU is visible); what it says without one."""

import numpy as np
import pytest

gpu = pytest.mark.gpu


def test_no_driver_is_no_gpu_not_an_error():
    pytest.importorskip("cuda.bindings", reason="cuda-python not installed")
    from runtime import cuda

    driver, _ = cuda.versions()
    if driver:
        pytest.skip("an NVIDIA driver is loaded here; this covers machines without one")
    assert cuda.device_count() == 0  # cudaErrorInsufficientDriver with driver version 0: no driver, no GPU


def test_a_driver_older_than_cuda_python_is_named_not_reported_as_no_gpu(monkeypatch):
    # JetPack 6 (CUDA 12.6 driver) with cuda-python 13: cudaGetDeviceCount fails with cudaErrorInsufficientDriver.
    # Real cudart enums and error names; only the driver's answers are the ones a JetPack 6 device gives.
    bindings = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python not installed")
    from runtime import cuda

    class JetPack6Driver:
        cudaError_t = bindings.cudaError_t
        cudaGetErrorName = staticmethod(bindings.cudaGetErrorName)

        @staticmethod
        def cudaGetDeviceCount():
            return bindings.cudaError_t.cudaErrorInsufficientDriver, 0

        @staticmethod
        def cudaDriverGetVersion():
            return bindings.cudaError_t.cudaSuccess, 12060

        @staticmethod
        def cudaRuntimeGetVersion():
            return bindings.cudaError_t.cudaSuccess, 13050

    monkeypatch.setattr(cuda, "_cudart", lambda: JetPack6Driver)
    with pytest.raises(cuda.CudaError, match=r"cudaErrorInsufficientDriver.*CUDA 13.5.*CUDA 12.6.*cuda-python>=12,<13"):
        cuda.device_count()


@gpu
def test_pinned_round_trip_through_device_memory():
    from runtime import cuda

    stream = cuda.Stream()
    src = cuda.PinnedBuffer((64, 3, 224, 224), np.float32)
    dst = cuda.PinnedBuffer((64, 3, 224, 224), np.float32)
    dev = cuda.DeviceBuffer(src.nbytes)
    src.array[...] = np.random.default_rng(0).random(src.shape, np.float32)
    cuda.copy_htod_async(dev, src, src.nbytes, stream)
    cuda.copy_dtoh_async(dst, dev, dst.nbytes, stream)
    stream.synchronize()
    assert np.array_equal(src.array, dst.array)
    for b in (src, dst, dev, stream):
        b.close()


@gpu
def test_cuda_graph_replays_captured_copies():
    from runtime import cuda

    stream = cuda.Stream()
    src, dst = cuda.PinnedBuffer((1024,), np.float32), cuda.PinnedBuffer((1024,), np.float32)
    dev = cuda.DeviceBuffer(src.nbytes)

    def work():
        cuda.copy_htod_async(dev, src, src.nbytes, stream)
        cuda.copy_dtoh_async(dst, dev, dst.nbytes, stream)

    graph = cuda.CudaGraph(stream, work)
    for value in (1.0, 2.5):
        src.array[...] = value
        graph.launch()
        stream.synchronize()
        assert np.all(dst.array == value)
    graph.close()
    for b in (src, dst, dev, stream):
        b.close()


@gpu
def test_device_info_names_the_gpu():
    from runtime import cuda

    info = cuda.device_info(0)
    assert info["name"] and "." in info["compute_capability"] and info["free_bytes"] > 0


@gpu
def test_errors_name_the_call():
    from runtime import cuda

    with pytest.raises(cuda.CudaError, match="cudaMalloc"):
        cuda.DeviceBuffer(1 << 62)


@gpu
def test_a_failure_during_capture_keeps_its_own_error_and_the_stream_works_after():
    from runtime import cuda

    stream = cuda.Stream()
    src, dst = cuda.PinnedBuffer((256,), np.float32), cuda.PinnedBuffer((256,), np.float32)
    dev = cuda.DeviceBuffer(src.nbytes)

    def broken():
        cuda.copy_htod_async(dev, src, src.nbytes, stream)
        raise ValueError("the enqueue failed")

    with pytest.raises(ValueError, match="the enqueue failed"):  # not masked by cudaStreamEndCapture's error
        cuda.CudaGraph(stream, broken)
    src.array[...] = 3.0
    cuda.copy_htod_async(dev, src, src.nbytes, stream)
    cuda.copy_dtoh_async(dst, dev, dst.nbytes, stream)
    stream.synchronize()
    assert np.all(dst.array == 3.0)
    for b in (src, dst, dev, stream):
        b.close()
