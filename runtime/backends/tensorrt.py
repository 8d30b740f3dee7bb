"""TensorRT backend: ``tensorrt`` or ``tensorrt_rtx``, name-based I/O tensors, cuda-python memory and streams.

``activate``: make GPU ``device_id`` current (``cudaSetDevice``; Triton passes
``model_instance_device_id``), preflight once (``formats.engine_manifest``: file and manifest, then
TensorRT version, GPU, Jetson), then register TensorRT's plugins, set up the runtime as the manifest
requires (host code allowed only for a version-compatible plan, which embeds its lean runtime; the DLA
core it was built for), deserialize, create an execution context (None from TensorRT is an error, as is
a False from ``set_tensor_address``), one stream, and — sized for the profile's maximum batch — one
pinned host buffer and one device buffer per I/O tensor, allocated once and reused. A failure half-way
frees what was allocated; ``deactivate`` frees everything even when one free fails, then raises that.
``infer``: requests larger than the profile's maximum are split into chunks; a DLA plan (fixed shape:
the DLA has no dynamic dimensions) gets its last chunk zero-padded to the build shape and the padding's
outputs dropped. Each chunk is copied into the pinned input, then H2D → ``execute_async_v3`` → D2H on
the one stream, one synchronize.

CUDA graphs (``cuda_graphs=True``), as trtexec's ``sampleInference.cpp``: trtexec captures one shape per
execution context, so each graphed batch size gets *its own* context, whose input shape is set once and
never changes (a graph replayed after ``set_input_shape`` moved its context to another shape may run
with stale shape-dependent state). For each: one plain enqueue and a synchronize, capture only where
the context says the stream is capturable, and when ``execute_async_v3`` returns False while capturing,
end the capture, clear the error and run without a graph for that batch size from then on
(``graph_fallbacks`` says which and why). At most ``MAX_GRAPH_CONTEXTS`` batch sizes are graphed; others
run plain on the shared context.

``time_stages=True``: each call records ``last_stage_ms`` — host staging into pinned memory, H2D, GPU
compute and D2H (CUDA events), the host time of the enqueue (``execute_async_v3`` or graph launch) and
of the synchronize wait, and the copy out of pinned memory — the split trtexec reports.

Only the name-based tensor API (TensorRT ≥ 8.5) is used; nothing here imports torch. This code
cannot run on any machine of this project (no TensorRT with a supported GPU): its tests carry the
``tensorrt`` marker and skip with the reason; the README says what was verified where.
"""

from __future__ import annotations

import time
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
    if flags.version_compatible and hasattr(runtime, "engine_host_code_allowed"):
        runtime.engine_host_code_allowed = True
    if flags.dla_core is not None:
        runtime.DLA_core = int(flags.dla_core)
    return runtime


MAX_GRAPH_CONTEXTS = 8  # each graphed batch size holds its own context (activation memory): bounded


class TensorRTBackend(Backend):
    def __init__(
        self,
        path: str | Path,
        cuda_graphs: bool = False,
        flavour: str | None = None,
        time_stages: bool = False,
        device_id: int = 0,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.cuda_graphs = cuda_graphs
        self.time_stages = time_stages  # per-stage times of the last chunk in last_stage_ms
        self.last_stage_ms: dict[str, float] = {}
        self.flavour = flavour
        self.device_id = int(device_id)
        self.manifest: EngineManifest | None = None
        self.graph_fallbacks: dict[int, str] = {}
        self._inputs: tuple[TensorInfo, ...] = ()
        self._outputs: tuple[TensorInfo, ...] = ()

    # lifecycle ---------------------------------------------------------------------------

    def _activate(self) -> None:
        manifest = check_file(self.path)  # the file and its manifest, before anything heavy (hashed once)
        trt, flavour = import_tensorrt(self.flavour or manifest.flavour)
        device = None
        if cuda.device_count():  # CudaError names a driver mismatch
            cuda.set_device(self.device_id)
            device = cuda.device_info(self.device_id)
        if device is None:
            raise ModelLoadError(
                f"{self.path}: no CUDA GPU visible; a TensorRT engine needs one (run `python -m runtime.doctor`)"
            )
        check_machine(self.path, manifest, flavour, trt.__version__, device, on_jetson())
        self.manifest = manifest
        self._fixed_batch = dla_fixed_batch(manifest)
        try:
            self._deserialize(trt, flavour)
            self._allocate()
        except BaseException:
            try:
                self._deactivate()  # free whatever was allocated before the failure ...
            except cuda.CudaError:
                pass  # ... without hiding the failure that got us here
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
        self._stream = cuda.Stream()
        self._context = self._new_context()

    def _new_context(self):
        """An execution context; None from TensorRT (out of device memory for its activations) is an error."""
        context = self._engine.create_execution_context()
        if context is None:
            raise ModelLoadError(
                f"{self.path}: TensorRT could not create an execution context (usually out of GPU memory for "
                "its activations); free GPU memory, or rebuild with a smaller --max-batch: "
                f"{self.manifest.rebuild_command}"
            )
        for name, buffer in getattr(self, "_device", {}).items():
            self._bind(context, name, buffer.ptr)
        return context

    def _bind(self, context, name: str, ptr: int) -> None:
        if context.set_tensor_address(name, ptr) is False:  # False: wrong name or a misaligned address
            raise ModelLoadError(f"{self.path}: TensorRT refused the device address of tensor {name!r}")

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
        self._graph_contexts: dict[int, object] = {}
        self.graph_fallbacks = {}
        for info in self._inputs + self._outputs:
            rest = tuple(d if d is not None else 1 for d in info.shape[1:])
            if info in self._outputs and any(d is None for d in info.shape[1:]):
                raise ModelLoadError(f"{self.path}: output {info.name} has a dynamic non-batch shape {info.shape}")
            shape = (self._max_batch,) + rest
            self._host[info.name] = cuda.PinnedBuffer(shape, info.dtype)
            self._device[info.name] = cuda.DeviceBuffer(self._host[info.name].nbytes)
            self._bind(self._context, info.name, self._device[info.name].ptr)
        self._events = [cuda.Event() for _ in range(4)] if self.time_stages else []

    def _deactivate(self) -> None:
        """Free everything, each release tried even when an earlier one fails; then raise the first failure."""
        resources = list(getattr(self, "_events", []))
        resources += list(getattr(self, "_graphs", {}).values())
        resources += list(getattr(self, "_host", {}).values()) + list(getattr(self, "_device", {}).values())
        if getattr(self, "_stream", None) is not None:
            resources.append(self._stream)
        self._events, self._graphs, self._host, self._device, self._stream = [], {}, {}, {}, None
        self._graph_contexts = {}
        self._context = self._engine = self._runtime = None
        first: Exception | None = None
        for resource in resources:
            try:
                resource.close()
            except Exception as exc:  # keep freeing: one failing cudaFree must not leak the rest
                first = first or exc
        if first is not None:
            raise first

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

    def _enqueue(self, context) -> None:
        if not context.execute_async_v3(self._stream.ptr):
            raise ModelLoadError(f"{self.path}: execute_async_v3 failed (see the TensorRT log above)")

    def _set_shape(self, context, name: str, shape: tuple[int, ...]) -> None:
        if not context.set_input_shape(name, shape):  # False: outside the optimization profile
            low, _, high = self._profile[name]
            raise BackendInputError(
                f"{self.path}: input {name} shape {shape} is outside the engine's optimization "
                f"profile {tuple(low)} … {tuple(high)}; rebuild with a profile that covers it: "
                f"{self.manifest.rebuild_command}"
            )

    def _capturable(self, context) -> bool:
        if hasattr(context, "is_stream_capturable"):  # TensorRT-RTX: some engines cannot be captured
            return bool(context.is_stream_capturable(self._stream.ptr))
        return True

    def _context_for(self, feed: Mapping[str, np.ndarray], rows: int):
        """The context this batch size runs on, its input shapes set: its own (graphed) one, else the shared one."""
        graphed = self.cuda_graphs and rows not in self.graph_fallbacks
        if graphed and rows in self._graph_contexts:
            return self._graph_contexts[rows]  # its shapes were set once, when it was made
        context = self._context
        if graphed and len(self._graph_contexts) < MAX_GRAPH_CONTEXTS:
            try:
                context = self._graph_contexts[rows] = self._new_context()
            except ModelLoadError as exc:  # no memory for one more context: this size runs plain, still correct
                self._fall_back(rows, str(exc))
        for info in self._inputs:
            self._set_shape(context, info.name, (rows,) + feed[info.name].shape[1:])
        return context

    def _launch(self, context, rows: int) -> None:
        """Run the enqueued batch: this batch size's CUDA graph where it can be captured, else a plain enqueue."""
        if context is self._context:
            self._enqueue(context)
            return
        graph = self._graphs.get(rows)
        if graph is None:
            self._enqueue(context)  # one plain run first: TensorRT may allocate on the first enqueue ...
            self._stream.synchronize()  # ... and that work must be done before capture starts (trtexec does this)
            if not self._capturable(context):
                self._fall_back(rows, "the execution context says this stream cannot be captured")
                return
            try:  # execute_async_v3 returns False while capturing when the capture fails (trtexec)
                graph = self._graphs[rows] = cuda.CudaGraph(
                    self._stream, lambda: context.execute_async_v3(self._stream.ptr)
                )
            except cuda.CaptureFailed as exc:
                self._fall_back(rows, str(exc))
            return  # the plain run above already produced this batch's outputs
        graph.launch()

    def _fall_back(self, rows: int, why: str) -> None:
        """Plain enqueues on the shared context for this batch size from now on; its own context goes."""
        self.graph_fallbacks[rows] = why
        self._graph_contexts.pop(rows, None)

    def _run_chunk(self, feed: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        events, clock = self._events, time.perf_counter
        t0 = clock()
        context = self._context_for(feed, rows)
        for info in self._inputs:
            self._host[info.name].view(rows)[...] = feed[info.name]
        t1 = clock()
        if events:
            events[0].record(self._stream)
        for info in self._inputs:
            host = self._host[info.name]
            cuda.copy_htod_async(self._device[info.name], host, host.view(rows).nbytes, self._stream)
        if events:
            events[1].record(self._stream)
        t2 = clock()
        self._launch(context, rows)
        t3 = clock()
        if events:
            events[2].record(self._stream)
        for info in self._outputs:
            host = self._host[info.name]
            cuda.copy_dtoh_async(host, self._device[info.name], host.view(rows).nbytes, self._stream)
        if events:
            events[3].record(self._stream)
        t4 = clock()
        self._stream.synchronize()
        t5 = clock()
        outs = {info.name: self._host[info.name].view(rows).copy() for info in self._outputs}
        if events:  # the split trtexec reports: GPU time of H2D / compute / D2H, host time of the enqueue
            self.last_stage_ms = {
                "stage_in": 1e3 * (t1 - t0),
                "h2d": events[0].elapsed_ms(events[1]),
                "gpu_compute": events[1].elapsed_ms(events[2]),
                "d2h": events[2].elapsed_ms(events[3]),
                "enqueue": 1e3 * (t3 - t2),
                "sync": 1e3 * (t5 - t4),
                "copy_out": 1e3 * (clock() - t5),
            }
        return outs

    def compute_only_ms(self, feed: Mapping[str, np.ndarray]) -> float:
        """trtexec's GPU compute figure: CUDA events around one launch on inputs already on the device — this
        batch size's CUDA graph with ``cuda_graphs`` (trtexec --useCudaGraph), else a plain enqueue; no
        copies. ``feed`` is run once first (fills the device inputs, captures the graph)."""
        rows = self._fixed_batch or len(next(iter(feed.values())))  # a DLA plan runs its build shape
        self.infer(feed)
        start, end = cuda.Event(), cuda.Event()
        try:
            context = self._graph_contexts.get(rows, self._context)
            if context is self._context:
                for info in self._inputs:
                    self._set_shape(context, info.name, (rows,) + feed[info.name].shape[1:])
            start.record(self._stream)
            graph = self._graphs.get(rows)
            graph.launch() if graph is not None else self._enqueue(context)
            end.record(self._stream)
            self._stream.synchronize()
            return start.elapsed_ms(end)
        finally:
            start.close()
            end.close()

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = {len(v) for v in feed.values()}
        if len(rows) != 1:
            raise BackendInputError(f"{self.path}: inputs have different batch sizes {sorted(rows)}")
        total = rows.pop()
        if total == 0:
            raise BackendInputError(f"{self.path}: empty batch; pass at least one input")
        chunks = []
        for start in range(0, total, self.max_batch):  # split past the profile
            part = {k: np.ascontiguousarray(v[start : start + self.max_batch]) for k, v in feed.items()}
            real = len(next(iter(part.values())))
            if self._fixed_batch and real < self._fixed_batch:  # DLA: runtime shapes must equal the build shape
                part = {k: _pad_rows(v, self._fixed_batch) for k, v in part.items()}
            out = self._run_chunk(part, len(next(iter(part.values()))))
            chunks.append({k: v[:real] for k, v in out.items()})
        return {info.name: np.concatenate([c[info.name] for c in chunks]) for info in self._outputs}


def dla_fixed_batch(manifest: EngineManifest) -> int | None:
    """The one batch size a DLA plan runs (min = opt = max), or None for a GPU plan (dynamic batch)."""
    if manifest.build_flags.dla_core is None or not manifest.profiles:
        return None
    return int(manifest.profiles[0].max[0])


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` zero-padded along the batch axis to ``rows`` (the padding's outputs are dropped after)."""
    padded = np.zeros((rows,) + array.shape[1:], array.dtype)
    padded[: len(array)] = array
    return padded
