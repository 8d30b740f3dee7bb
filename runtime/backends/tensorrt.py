"""TensorRT backend: ``tensorrt`` or ``tensorrt_rtx``, name-based I/O tensors, cuda-python memory and streams.

``activate``: preflight once (``formats.engine_manifest``: file and manifest, then TensorRT version,
GPU, Jetson), then register TensorRT's plugins, set up the runtime as the manifest requires (host code
allowed only for a version-compatible plan, which embeds its lean runtime; the DLA core it was built
for), deserialize, create one execution context, one stream, and — sized for the profile's maximum
batch — one pinned host buffer and one device buffer per I/O tensor, allocated once and reused. A
failure half-way frees what was allocated.
``infer``: requests larger than the profile's maximum are split into chunks (never padded
silently); each chunk is copied into the pinned input, then H2D → ``execute_async_v3`` → D2H on
the one stream, one synchronize. With ``cuda_graphs=True`` the enqueue of each batch size is
captured once as a CUDA graph and replayed, as trtexec does: one plain enqueue and a synchronize
first, capture only where the context says the stream is capturable, and a plain enqueue for that
batch size from then on when capture fails (``graph_fallbacks`` says which and why).

Only the name-based tensor API (TensorRT ≥ 8.5) is used; nothing here imports torch. This code
cannot run on any machine of this project (no TensorRT with a supported GPU): its tests carry the
``tensorrt`` marker and skip with the reason; the README says what was verified where.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from formats.engine_manifest import EngineManifest, check_file, check_machine, on_jetson
from formats.errors import BackendInputError, ModelLoadError
from runtime import cuda
from runtime.backends.base import Backend, TensorInfo
from runtime.trt_import import import_tensorrt


def _np_dtype(trt, dtype) -> np.dtype:
    if hasattr(trt, "nptype"):
        return np.dtype(trt.nptype(dtype))
    return np.dtype(
        {
            "FLOAT": np.float32,
            "HALF": np.float16,
            "INT8": np.int8,
            "INT32": np.int32,
            "UINT8": np.uint8,
            "BOOL": np.bool_,
            "INT64": np.int64,
        }[dtype.name]
    )


def make_runtime(trt, logger, manifest: EngineManifest):
    """A ``trt.Runtime`` set up as the plan's manifest requires, before anything is deserialized: TensorRT's
    plugins registered (a plan may reference them), host code allowed only for a version-compatible plan (it
    carries its lean runtime as host code; we trust plans whose sha256 preflight matched against the manifest,
    as Polygraphy's loader does), and the DLA core the plan was built for."""
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    runtime = trt.Runtime(logger)
    flags = manifest.build_flags
    if flags.get("version_compatible") and hasattr(runtime, "engine_host_code_allowed"):
        runtime.engine_host_code_allowed = True
    if flags.get("dla_core") is not None:
        runtime.DLA_core = int(flags["dla_core"])
    return runtime


class TensorRTBackend(Backend):
    def __init__(
        self, path: str | Path, cuda_graphs: bool = False, flavour: str | None = None, time_stages: bool = False
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.cuda_graphs = cuda_graphs
        self.time_stages = time_stages  # CUDA events around H2D / compute / D2H of the last chunk
        self.last_stage_ms: dict[str, float] = {}
        self.flavour = flavour
        self.manifest: EngineManifest | None = None
        self._inputs: tuple[TensorInfo, ...] = ()
        self._outputs: tuple[TensorInfo, ...] = ()

    # lifecycle ---------------------------------------------------------------------------

    def _activate(self) -> None:
        manifest = check_file(self.path)  # the file and its manifest, before anything heavy (hashed once)
        trt, flavour = import_tensorrt(self.flavour or manifest.flavour)
        device = cuda.device_info(0) if cuda.device_count() else None  # CudaError names a driver mismatch
        if device is None:
            raise ModelLoadError(
                f"{self.path}: no CUDA GPU visible; a TensorRT engine needs one (run `python -m runtime.doctor`)"
            )
        check_machine(self.path, manifest, flavour, trt.__version__, device, on_jetson())
        self.manifest = manifest
        try:
            self._deserialize(trt, flavour)
            self._allocate()
        except BaseException:
            self._deactivate()  # free whatever was allocated before the failure
            raise

    def _deserialize(self, trt, flavour: str) -> None:
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = make_runtime(trt, self._logger, self.manifest)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelLoadError(
                f"{self.path}: {flavour} {trt.__version__} could not deserialize the engine; "
                f"rebuild it: {self.manifest.rebuild_command}"
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()

    def _allocate(self) -> None:
        trt = self._trt
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        inputs, outputs = [], []
        self._max_batch = None
        self._profile: dict[str, tuple] = {}
        for name in names:
            dtype = _np_dtype(trt, self._engine.get_tensor_dtype(name))
            shape = tuple(self._engine.get_tensor_shape(name))
            if is_input[name]:
                self._profile[name] = tuple(tuple(s) for s in self._engine.get_tensor_profile_shape(name, 0))
                max_rows = int(self._profile[name][2][0])
                self._max_batch = max_rows if self._max_batch is None else min(self._max_batch, max_rows)
            info = TensorInfo(name, dtype, tuple(None if d < 0 else int(d) for d in shape))
            (inputs if is_input[name] else outputs).append(info)
        self._inputs, self._outputs = tuple(inputs), tuple(outputs)
        self._host: dict[str, cuda.PinnedBuffer] = {}
        self._device: dict[str, cuda.DeviceBuffer] = {}
        self._graphs: dict[int, cuda.CudaGraph] = {}
        self.graph_fallbacks: dict[int, str] = {}
        for info in self._inputs + self._outputs:
            rest = tuple(d if d is not None else 1 for d in info.shape[1:])
            if info in self._outputs and any(d is None for d in info.shape[1:]):
                raise ModelLoadError(f"{self.path}: output {info.name} has a dynamic non-batch shape {info.shape}")
            shape = (self._max_batch,) + rest
            self._host[info.name] = cuda.PinnedBuffer(shape, info.dtype)
            self._device[info.name] = cuda.DeviceBuffer(self._host[info.name].nbytes)
            self._context.set_tensor_address(info.name, self._device[info.name].ptr)
        self._events = [cuda.Event() for _ in range(4)] if self.time_stages else []

    def _deactivate(self) -> None:
        for event in getattr(self, "_events", []):
            event.close()
        for graph in getattr(self, "_graphs", {}).values():
            graph.close()
        for buffer in list(getattr(self, "_host", {}).values()) + list(getattr(self, "_device", {}).values()):
            buffer.close()
        if getattr(self, "_stream", None) is not None:
            self._stream.close()
        self._events, self._graphs, self._host, self._device, self._stream = [], {}, {}, {}, None
        self._context = self._engine = self._runtime = None

    # I/O ---------------------------------------------------------------------------------

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return self._outputs

    @property
    def max_batch(self) -> int:
        return int(self._max_batch)

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.ptr):
            raise ModelLoadError(f"{self.path}: execute_async_v3 failed (see the TensorRT log above)")

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self._context.set_input_shape(name, shape):  # False: outside the optimization profile
            low, _, high = self._profile[name]
            raise BackendInputError(
                f"{self.path}: input {name} shape {shape} is outside the engine's optimization "
                f"profile {tuple(low)} … {tuple(high)}; rebuild with a profile that covers it: "
                f"{self.manifest.rebuild_command}"
            )

    def _capturable(self) -> bool:
        if hasattr(self._context, "is_stream_capturable"):  # TensorRT-RTX: some engines cannot be captured
            return bool(self._context.is_stream_capturable(self._stream.ptr))
        return True

    def _launch(self, rows: int) -> None:
        """Run the enqueued batch: a CUDA graph per batch size where it can be captured, else a plain enqueue."""
        if not self.cuda_graphs or rows in self.graph_fallbacks:
            self._enqueue()
            return
        graph = self._graphs.get(rows)
        if graph is None:
            self._enqueue()  # one plain run first: TensorRT may allocate on the first enqueue ...
            self._stream.synchronize()  # ... and that work must be done before capture starts (trtexec does this)
            if not self._capturable():
                self.graph_fallbacks[rows] = "the execution context says this stream cannot be captured"
                return
            try:
                graph = self._graphs[rows] = cuda.CudaGraph(self._stream, self._enqueue)
            except cuda.CudaError as exc:  # capture unsupported for this engine: plain enqueues from now on
                self.graph_fallbacks[rows] = str(exc)
                return  # the plain run above already produced this batch's outputs
        graph.launch()

    def _run_chunk(self, feed: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        events = self._events
        if events:
            events[0].record(self._stream)
        for info in self._inputs:
            host = self._host[info.name]
            host.view(rows)[...] = feed[info.name]
            self._set_shape(info.name, (rows,) + feed[info.name].shape[1:])
            cuda.copy_htod_async(self._device[info.name], host, host.view(rows).nbytes, self._stream)
        if events:
            events[1].record(self._stream)
        self._launch(rows)
        outs = {}
        if events:
            events[2].record(self._stream)
        for info in self._outputs:
            host = self._host[info.name]
            cuda.copy_dtoh_async(host, self._device[info.name], host.view(rows).nbytes, self._stream)
        if events:
            events[3].record(self._stream)
        self._stream.synchronize()
        if events:  # GPU time of each stage, as trtexec separates H2D, compute and D2H
            self.last_stage_ms = {
                "h2d": events[0].elapsed_ms(events[1]),
                "gpu_compute": events[1].elapsed_ms(events[2]),
                "d2h": events[2].elapsed_ms(events[3]),
            }
        for info in self._outputs:
            outs[info.name] = self._host[info.name].view(rows).copy()
        return outs

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = {len(v) for v in feed.values()}
        if len(rows) != 1:
            raise BackendInputError(f"{self.path}: inputs have different batch sizes {sorted(rows)}")
        total = rows.pop()
        if total == 0:
            raise BackendInputError(f"{self.path}: empty batch; pass at least one input")
        chunks = []
        for start in range(0, total, self.max_batch):  # split past the profile, never pad past it
            part = {k: np.ascontiguousarray(v[start : start + self.max_batch]) for k, v in feed.items()}
            chunks.append(self._run_chunk(part, len(next(iter(part.values())))))
        return {info.name: np.concatenate([c[info.name] for c in chunks]) for info in self._outputs}
