"""The CUDA layer of the TensorRT backend, on cuda-python (``cuda.bindings.runtime``): no PyCUDA, no torch.

- ``check``: every cudart call's error code becomes a ``CudaError`` naming the call.
- ``Stream``: one stream per backend; everything on it is asynchronous until ``synchronize``.
- ``DeviceBuffer``: ``cudaMalloc`` memory, freed on ``close``.
- ``PinnedBuffer``: page-locked host memory (``cudaMallocHost``) with a numpy view, allocated
  once and reused: async copies need pinned memory to overlap.
- ``CudaGraph``: capture work issued on a stream once, replay it with one launch.

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
            check(_cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


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
            check(_cudart().cudaEventDestroy(self.handle), "cudaEventDestroy")
            self.handle = None


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr = int(check(_cudart().cudaMalloc(max(1, self.nbytes)), f"cudaMalloc({self.nbytes} bytes)"))

    def close(self) -> None:
        if self.ptr:
            check(_cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


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
            check(_cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0


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

    If ``work()`` raises during capture, the capture is ended (and its partial graph destroyed) and the
    original exception propagates; a failure of the capture itself is a ``CudaError``, after which the
    stream is usable again for plain launches (the backend falls back to them, as trtexec does).
    """

    def __init__(self, stream: Stream, work: Callable[[], None]) -> None:
        cudart = _cudart()
        self.stream = stream
        self.graph = self.exec = None
        check(
            cudart.cudaStreamBeginCapture(stream.handle, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
            "cudaStreamBeginCapture",
        )
        try:
            work()
        except BaseException:
            err, graph = cudart.cudaStreamEndCapture(stream.handle)  # leave capture mode; keep *their* error
            if err == cudart.cudaError_t.cudaSuccess and graph is not None:
                cudart.cudaGraphDestroy(graph)
            cudart.cudaGetLastError()  # clear the sticky capture error so the stream works again
            raise
        err, graph = cudart.cudaStreamEndCapture(stream.handle)
        if err != cudart.cudaError_t.cudaSuccess:
            cudart.cudaGetLastError()
            check(err, "cudaStreamEndCapture (the work is not capturable; run it without a CUDA graph)")
        self.graph = graph
        try:
            self.exec = check(cudart.cudaGraphInstantiate(self.graph, 0), "cudaGraphInstantiate")
        except CudaError:
            self.close()
            cudart.cudaGetLastError()
            raise

    def launch(self) -> None:
        check(_cudart().cudaGraphLaunch(self.exec, self.stream.handle), "cudaGraphLaunch")

    def close(self) -> None:
        cudart = _cudart()
        if getattr(self, "exec", None) is not None:
            check(cudart.cudaGraphExecDestroy(self.exec), "cudaGraphExecDestroy")
            self.exec = None
        if getattr(self, "graph", None) is not None:
            check(cudart.cudaGraphDestroy(self.graph), "cudaGraphDestroy")
            self.graph = None
