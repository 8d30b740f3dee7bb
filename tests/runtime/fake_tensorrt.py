"""A test double of TensorRT and cudart for the control flow of the TensorRT backend (no machine here runs an
engine: standard TensorRT is absent, TensorRT-RTX has no GPU to run on).

``FakeCudart`` stands in for ``cuda.bindings.runtime`` under the real ``runtime.cuda`` code: device and pinned
memory are real host memory (so the backend's copies move real bytes), a stream runs work at once unless it is
capturing, in which case copies and enqueues are recorded into a graph that ``cudaGraphLaunch`` replays. It keeps
CUDA's sticky error after a failed capture until ``cudaGetLastError`` clears it.

``fake_trt(engine)`` is a ``tensorrt`` module with one engine: input ``x`` (N, 4) float32, output ``y`` (N, 2) =
per row (sum, max). Its execution context models what the real one does and the backend must respect:

- ``set_input_shape`` outside the profile returns False; a *changed* shape re-plans the context (its
  shape-dependent internal state moves), so a graph captured before that change replays stale state and writes
  -1s — the hazard of one context with many graphs;
- ``execute_async_v3`` while the stream is capturing returns False when the engine is ``uncapturable`` (and
  leaves the capture invalidated), as TensorRT does for operations CUDA graphs do not permit;
- ``create_execution_context`` returns None and ``set_tensor_address`` False when told to.
"""

from __future__ import annotations

import ctypes
import enum
import types
from dataclasses import dataclass, field

import numpy as np


class Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorStreamCaptureInvalidated = 901


OK = Err.cudaSuccess


@dataclass
class _Graph:
    ops: list = field(default_factory=list)


class FakeCudart:
    cudaError_t = Err
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def __init__(self, devices: int = 1, fail_free: int | None = None) -> None:
        self.devices = devices
        self.current_device = 0
        self.live: dict[int, ctypes.Array] = {}  # pointer → memory (device and pinned alike)
        self.fail_free = fail_free  # the n-th cudaFree (0-based) fails, as on a corrupted context
        self.frees = 0
        self.sticky = OK
        self.capturing: dict[int, _Graph] = {}
        self.streams = 0
        self.graphs_launched = 0

    # errors, devices ---------------------------------------------------------------------

    def cudaGetErrorName(self, err):
        return OK, Err(err).name.encode()

    def cudaGetLastError(self):
        err, self.sticky = self.sticky, OK
        return (err,)

    def cudaGetDeviceCount(self):
        return OK, self.devices

    def cudaSetDevice(self, index):
        if not 0 <= index < self.devices:
            return (Err.cudaErrorInvalidDevice,)
        self.current_device = index
        return (OK,)

    def cudaGetDeviceProperties(self, index):
        return OK, types.SimpleNamespace(name=f"Fake GPU {index}".encode(), major=8, minor=7)

    def cudaMemGetInfo(self):
        return OK, 1 << 30, 1 << 31

    def cudaDriverGetVersion(self):
        return OK, 13000

    def cudaRuntimeGetVersion(self):
        return OK, 13000

    # memory -----------------------------------------------------------------------------

    def _alloc(self, nbytes):
        memory = (ctypes.c_byte * nbytes)()
        self.live[ctypes.addressof(memory)] = memory
        return OK, ctypes.addressof(memory)

    def cudaMalloc(self, nbytes):
        return self._alloc(nbytes)

    def cudaMallocHost(self, nbytes):
        return self._alloc(nbytes)

    def _free(self, ptr):
        n, self.frees = self.frees, self.frees + 1
        if n == self.fail_free:
            return (Err.cudaErrorInvalidValue,)  # and the memory stays allocated: a leak we can see
        self.live.pop(int(ptr), None)
        return (OK,)

    cudaFree = cudaFreeHost = _free

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.run_on(stream, lambda: ctypes.memmove(dst, src, nbytes))
        return (OK,)

    # streams, events, graphs --------------------------------------------------------------

    def run_on(self, stream, op) -> None:
        if int(stream) in self.capturing:
            self.capturing[int(stream)].ops.append(op)
        else:
            op()

    def cudaStreamCreate(self):
        self.streams += 1
        return OK, 1000 + self.streams

    def cudaStreamSynchronize(self, stream):
        return (OK,)

    def cudaStreamDestroy(self, stream):
        self.streams -= 1
        return (OK,)

    def cudaEventCreate(self):
        return OK, object()

    def cudaEventRecord(self, event, stream):
        return (OK,)

    def cudaEventElapsedTime(self, start, end):
        return OK, 0.5

    def cudaEventDestroy(self, event):
        return (OK,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing[int(stream)] = _Graph()
        return (OK,)

    def cudaStreamEndCapture(self, stream):
        graph = self.capturing.pop(int(stream))
        if self.sticky != OK:
            return self.sticky, None
        return OK, graph

    def cudaGraphInstantiate(self, graph, flags):
        return OK, graph

    def cudaGraphLaunch(self, graph_exec, stream):
        self.graphs_launched += 1
        for op in graph_exec.ops:
            op()
        return (OK,)

    def cudaGraphExecDestroy(self, graph_exec):
        return (OK,)

    def cudaGraphDestroy(self, graph):
        return (OK,)


# TensorRT ------------------------------------------------------------------------------------


@dataclass
class EngineBehaviour:
    profile: tuple = ((1, 4), (8, 4), (16, 4))
    uncapturable: bool = False
    no_context: bool = False
    refuse_address: bool = False


def _array(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.frombuffer((ctypes.c_float * count).from_address(ptr), np.float32).reshape(shape)


def expected(x: np.ndarray) -> np.ndarray:
    """What the fake engine computes: per row (sum, max)."""
    return np.stack([x.sum(axis=1), x.max(axis=1)], axis=1).astype(np.float32)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.addresses, self.rows, self.plan = engine, {}, None, 0

    def set_tensor_address(self, name, ptr):
        if self.engine.behaviour.refuse_address:
            return False
        self.addresses[name] = int(ptr)
        return True

    def set_input_shape(self, name, shape):
        low, _, high = self.engine.behaviour.profile
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high)):
            return False
        if shape[0] != self.rows:
            self.rows, self.plan = shape[0], self.plan + 1  # re-planned: shape-dependent state moved
        return True

    def execute_async_v3(self, stream):
        cudart = self.engine.cudart
        capturing = int(stream) in cudart.capturing
        if capturing and self.engine.behaviour.uncapturable:
            cudart.sticky = Err.cudaErrorStreamCaptureInvalidated
            return False
        rows, plan = self.rows, self.plan

        def kernel():
            x = _array(self.addresses["x"], (rows, 4))
            y = _array(self.addresses["y"], (rows, 2))
            y[...] = expected(x) if self.plan == plan else -1.0  # a stale plan writes garbage

        cudart.run_on(stream, kernel)
        self.engine.enqueues += 1
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, cudart: FakeCudart, behaviour: EngineBehaviour) -> None:
        self.cudart, self.behaviour = cudart, behaviour
        self.contexts: list[FakeContext] = []
        self.enqueues = 0

    def get_tensor_name(self, i):
        return ("x", "y")[i]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "x" else "OUTPUT"

    def get_tensor_dtype(self, name):
        return np.float32

    def get_tensor_shape(self, name):
        return (-1, 4) if name == "x" else (-1, 2)

    def get_tensor_profile_shape(self, name, profile):
        return self.behaviour.profile

    def create_execution_context(self):
        if self.behaviour.no_context:
            return None
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


def fake_trt(engine: FakeEngine) -> types.SimpleNamespace:
    class Logger:
        WARNING = 2

        def __init__(self, severity=None):
            pass

    class Runtime:
        def __init__(self, logger):
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data):
            return engine

    return types.SimpleNamespace(
        __version__="10.3.0",
        Logger=Logger,
        Runtime=Runtime,
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        nptype=lambda dtype: dtype,
    )


def install(monkeypatch, tmp_path, behaviour: EngineBehaviour | None = None, devices: int = 1, **cudart_kw):
    """Put the doubles under ``runtime.cuda`` and ``runtime.backends.tensorrt``; returns (plan path, cudart,
    engine). Preflight is replaced by a manifest whose profile and DLA flag follow ``behaviour``."""
    from formats.engine_manifest import MANIFEST_FORMAT, EngineManifest
    from runtime import cuda
    from runtime.backends import tensorrt

    cudart = FakeCudart(devices=devices, **cudart_kw)
    behaviour = behaviour or EngineBehaviour()
    engine = FakeEngine(cudart, behaviour)
    low, opt, high = behaviour.profile
    manifest = EngineManifest.from_dict(
        dict(
            plan_sha256="0" * 64,
            plan_bytes=1,
            source_onnx="m.onnx",
            source_sha256="0" * 64,
            flavour="tensorrt",
            trt_version="10.3.0",
            precision="fp16",
            quantization_path="strongly-typed",
            profiles=[{"input": "x", "min": list(low), "opt": list(opt), "max": list(high)}],
            build_flags={"dla_core": 0} if low == high else {},
            spec={},
            format=MANIFEST_FORMAT,
        ),
        "fake manifest",
    )
    monkeypatch.setattr(cuda, "_cudart", lambda: cudart)
    monkeypatch.setattr(tensorrt, "check_file", lambda path: manifest)
    monkeypatch.setattr(tensorrt, "check_machine", lambda *args: None)
    monkeypatch.setattr(tensorrt, "import_tensorrt", lambda flavour: (fake_trt(engine), "tensorrt"))
    plan = tmp_path / "fake.plan"
    plan.write_bytes(b"fake plan")
    return plan, cudart, engine
