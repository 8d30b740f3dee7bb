"""The CUDA layer of the TensorRT backend, on cuda-python (``cuda.bindings.runtime``): no PyCUDA, no torch.

- ``check``: every cudart call's error code becomes a ``CudaError`` naming the call.
- ``Stream``: one stream per backend; everything on it is asynchronous until ``synchronize``.
- ``DeviceBuffer``: ``cudaMalloc`` memory, freed on ``close``.
- ``PinnedBuffer``: page-locked host memory (``cudaMallocHost``) with a numpy view, allocated
  once and reused: async copies need pinned memory to overlap.
- ``CudaGraph``: capture work issued on a stream once, replay it with one launch; a capture the work
  reports as failed (TensorRT's ``execute_async_v3`` returning False while capturing) ends as trtexec's
  ``endCaptureOnError`` does and is a ``CaptureFailed``, after which the stream runs plain launches.
- ``set_device``: ``cudaSetDevice`` for the calling thread (multi-GPU servers: Triton's
  ``model_instance_device_id``); ``device_info(index)`` of that device.

Verified only where a GPU is lent (tests marked ``gpu``); see the README for what ran where.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np

from formats.errors import ModelLoadError


class CudaError(ModelLoadError):
    """A CUDA runtime call failed."""


class CaptureFailed(CudaError):
    """A CUDA graph could not be captured; the stream was taken out of capture and its error cleared."""


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            raise CudaError(
                "cuda-python is not installed; `pip install cuda-python` (or cuda-bindings) — the "
                "TensorRT backend uses it for device memory and streams"
            ) from None
    return cudart


def check(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python result tuple ``(err, *values)``; raise CudaError unless err is success."""
    cudart = _cudart()
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        name = name.decode() if isinstance(name, bytes) else str(name)
        raise CudaError(f"{call} failed: {name} ({int(err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def version_text(version: int) -> str:
    """CUDA's integer versions as text: 12060 → "12.6", 0 → "none"."""
    return f"{version // 1000}.{(version % 1000) // 10}" if version else "none"


def versions() -> tuple[int, int]:
    """(driver, runtime) CUDA versions as integers (12060 = 12.6); driver 0 means no driver is installed."""
    cudart = _cudart()
    _, driver = cudart.cudaDriverGetVersion()
    _, runtime = cudart.cudaRuntimeGetVersion()
    return int(driver or 0), int(runtime or 0)


def driver_mismatch(driver: int, runtime: int) -> str | None:
    """Why cuda-python's runtime cannot run on this driver, or None when it can.

    CUDA's minor-version compatibility lets a runtime run on any driver of the same major (a CUDA 13.0
    driver runs cuda-python 13.3), so only a newer *major* is a mismatch — the JetPack 6 case, where
    ``pip install cuda-python`` resolves to 13.x but L4T r36 ships a CUDA 12.x driver.
    """
    if not driver or not runtime or runtime // 1000 <= driver // 1000:
        return None
    major = driver // 1000
    return (
        f"cuda-python is built for CUDA {version_text(runtime)} but the driver supports CUDA "
        f"{version_text(driver)}; install the cuda-python of the driver's major: "
        f'`pip install "cuda-python>={major},<{major + 1}"` (or update the driver)'
    )


def device_count() -> int:
    """How many GPUs CUDA sees: 0 when there is no driver or no device; CudaError for anything else.

    Any other failure (the driver is older than cuda-python, a broken install) is raised with its
    reason instead of being reported as "no GPU", which would send the user looking in the wrong place.
    """
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err == cudart.cudaError_t.cudaSuccess:
        return int(count)
    if err == cudart.cudaError_t.cudaErrorNoDevice:
        return 0
    driver, runtime = versions()
    if err == cudart.cudaError_t.cudaErrorInsufficientDriver and driver == 0:
        return 0  # no NVIDIA driver installed at all: a machine without a GPU
    mismatch = driver_mismatch(driver, runtime)
    _, name = cudart.cudaGetErrorName(err)
    name = name.decode() if isinstance(name, bytes) else str(name)
    raise CudaError(
        f"cudaGetDeviceCount failed: {name} ({int(err)})"
        + (
            f": {mismatch}"
            if mismatch
            else f"; driver CUDA {version_text(driver)}, cuda-python "
            f"{version_text(runtime)} — run `python -m runtime.doctor`"
        )
    )


def set_device(index: int) -> None:
    """Make GPU ``index`` current for this thread (``cudaSetDevice``): allocations, streams and TensorRT
    contexts created afterwards live there. A wrong index is a CudaError naming how many GPUs there are."""
    cudart = _cudart()
    err = cudart.cudaSetDevice(int(index))
    err = err[0] if isinstance(err, tuple) else err
    if err != cudart.cudaError_t.cudaSuccess:
        count = device_count()
        raise CudaError(
            f"cudaSetDevice({index}) failed: this machine has {count} GPU(s), numbered 0…{max(count - 1, 0)}; "
            "pass a device id below that (--device-id, CUDA_VISIBLE_DEVICES)"
        )


def device_info(index: int = 0) -> dict:
    cudart = _cudart()
    props = check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    free, total = check(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
    return {
        "name": name,
        "compute_capability": f"{props.major}.{props.minor}",
        "total_bytes": int(total),
        "free_bytes": int(free),
        "driver": check(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion"),
        "runtime": check(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"),
    }


class Stream:
    def __init__(self) -> None:
        self.handle = check(_cudart().cudaStreamCreate(), "cudaStreamCreate")

    def synchronize(self) -> None:
        check(_cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            check(_cudart().cudaStreamDestroy(handle), "cudaStreamDestroy")


class Event:
    """A CUDA event for timing work on a stream (``elapsed_ms`` between two recorded events)."""

    def __init__(self) -> None:
        self.handle = check(_cudart().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(_cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def elapsed_ms(self, later: Event) -> float:
        return float(check(_cudart().cudaEventElapsedTime(self.handle, later.handle), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            check(_cudart().cudaEventDestroy(handle), "cudaEventDestroy")


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr = int(check(_cudart().cudaMalloc(max(1, self.nbytes)), f"cudaMalloc({self.nbytes} bytes)"))

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0  # forgotten first: a failing cudaFree is not retried on a second close
            check(_cudart().cudaFree(ptr), "cudaFree")


class PinnedBuffer:
    """Page-locked host memory with a numpy view (``array``) of ``shape`` and ``dtype``."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.ptr = int(check(_cudart().cudaMallocHost(max(1, self.nbytes)), f"cudaMallocHost({self.nbytes} bytes)"))
        raw = (ctypes.c_byte * max(1, self.nbytes)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype, count=int(np.prod(self.shape))).reshape(self.shape)

    def view(self, rows: int) -> np.ndarray:
        """The first ``rows`` entries along the batch axis (no copy)."""
        return self.array[:rows]

    def close(self) -> None:
        if self.ptr:
            self.array = None
            ptr, self.ptr = self.ptr, 0
            check(_cudart().cudaFreeHost(ptr), "cudaFreeHost")


def copy_htod_async(dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    cudart = _cudart()
    check(
        cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
        "cudaMemcpyAsync (host to device)",
    )


def copy_dtoh_async(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    cudart = _cudart()
    check(
        cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
        "cudaMemcpyAsync (device to host)",
    )


class CudaGraph:
    """Capture everything ``work()`` issues on ``stream`` once; ``launch()`` replays it.

    ``work()`` returning False means the capture failed (TensorRT's ``execute_async_v3`` does so while
    capturing an engine with operations CUDA graphs do not permit): as trtexec's ``sampleInference.cpp``,
    the capture is ended on error, the sticky error cleared with ``cudaGetLastError`` and ``CaptureFailed``
    raised; the stream is usable again for plain launches. A failure of the capture calls themselves is a
    ``CaptureFailed`` too. If ``work()`` raises, the capture is ended the same way and *its* exception
    propagates.
    """

    def __init__(self, stream: Stream, work: Callable[[], bool | None]) -> None:
        cudart = _cudart()
        self.stream = stream
        self.graph = self.exec = None
        check(
            cudart.cudaStreamBeginCapture(stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
            "cudaStreamBeginCapture",
        )
        try:
            ok = work()
        except BaseException:
            self._end_on_error()
            raise
        if ok is False:
            self._end_on_error()
            raise CaptureFailed("the work reported a failed capture (operations not permitted in a CUDA graph)")
        err, graph = cudart.cudaStreamEndCapture(stream.handle)
        if err != cudart.cudaError_t.cudaSuccess:
            cudart.cudaGetLastError()
            raise CaptureFailed(f"cudaStreamEndCapture failed ({int(err)}): the work is not capturable")
        self.graph = graph
        try:
            self.exec = check(cudart.cudaGraphInstantiate(self.graph, 0), "cudaGraphInstantiate")
        except CudaError as exc:
            self.close()
            cudart.cudaGetLastError()
            raise CaptureFailed(str(exc)) from None

    def _end_on_error(self) -> None:
        """trtexec's ``endCaptureOnError``: leave capture mode, drop the partial graph, clear the sticky error."""
        cudart = _cudart()
        err, graph = cudart.cudaStreamEndCapture(self.stream.handle)
        if err == cudart.cudaError_t.cudaSuccess and graph is not None:
            cudart.cudaGraphDestroy(graph)
        cudart.cudaGetLastError()

    def launch(self) -> None:
        check(_cudart().cudaGraphLaunch(self.exec, self.stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        cudart = _cudart()
        exec_, graph = getattr(self, "exec", None), getattr(self, "graph", None)
        self.exec = self.graph = None
        try:
            if exec_ is not None:
                check(cudart.cudaGraphExecDestroy(exec_), "cudaGraphExecDestroy")
        finally:
            if graph is not None:
                check(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
