"""The cuda-python layer on a real GPU (marker `gpu`: skipped where no GPU is visible)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


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


def test_device_info_names_the_gpu():
    from runtime import cuda

    info = cuda.device_info(0)
    assert info["name"] and "." in info["compute_capability"] and info["free_bytes"] > 0


def test_errors_name_the_call():
    from runtime import cuda

    with pytest.raises(cuda.CudaError, match="cudaMalloc"):
        cuda.DeviceBuffer(1 << 62)
