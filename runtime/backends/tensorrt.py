"""TensorRT backend: ``tensorrt`` or ``tensorrt_rtx``, name-based I/O tensors, cuda-python memory and streams.

``activate``: preflight (``runtime.engine_manifest``: file, manifest, TensorRT version, GPU), then
deserialize, create one execution context, one stream, and — sized for the profile's maximum batch —
one pinned host buffer and one device buffer per I/O tensor, allocated once and reused.
``infer``: requests larger than the profile's maximum are split into chunks (never padded
silently); each chunk is copied into the pinned input, then H2D → ``execute_async_v3`` → D2H on
the one stream, one synchronize. With ``cuda_graphs=True`` the enqueue of each batch size is
captured once as a CUDA graph and replayed.

Only the name-based tensor API (TensorRT ≥ 8.5) is used; nothing here imports torch. This code
cannot run on any machine of this project (no TensorRT with a supported GPU): its tests carry the
``tensorrt`` marker and skip with the reason; the README says what was verified where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from runtime import cuda
from runtime.backends.base import Backend, TensorInfo
from runtime.engine_manifest import EngineManifest, preflight
from runtime.errors import BackendInputError, ModelLoadError
from runtime.trt_import import import_tensorrt


def _np_dtype(trt, dtype) -> np.dtype:
    if hasattr(trt, "nptype"):
        return np.dtype(trt.nptype(dtype))
    return np.dtype({"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                     "UINT8": np.uint8, "BOOL": np.bool_, "INT64": np.int64}[dtype.name])


class TensorRTBackend(Backend):
    def __init__(self, path: str | Path, cuda_graphs: bool = False, flavour: str | None = None,
                 time_stages: bool = False) -> None:
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
        manifest = preflight(self.path)  # the file and its manifest, before anything heavy
        trt, flavour = import_tensorrt(self.flavour or manifest.flavour)
        device = cuda.device_info(0) if cuda.device_count() else None
        if device is None:
            raise ModelLoadError(f"{self.path}: no CUDA GPU visible; a TensorRT engine needs one "
                                 "(run `python -m runtime.doctor`)")
        self.manifest = preflight(self.path, flavour, trt.__version__, device)
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelLoadError(f"{self.path}: {flavour} {trt.__version__} could not deserialize the engine; "
                                 f"rebuild it: {self.manifest.rebuild_command}")
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        inputs, outputs = [], []
        self._max_batch = None
        for name in names:
            dtype = _np_dtype(trt, self._engine.get_tensor_dtype(name))
            shape = tuple(self._engine.get_tensor_shape(name))
            if is_input[name]:
                _, _, max_shape = self._engine.get_tensor_profile_shape(name, 0)
                self._max_batch = int(max_shape[0]) if self._max_batch is None else min(self._max_batch, int(max_shape[0]))
            info = TensorInfo(name, dtype, tuple(None if d < 0 else int(d) for d in shape))
            (inputs if is_input[name] else outputs).append(info)
        self._inputs, self._outputs = tuple(inputs), tuple(outputs)
        self._host: dict[str, cuda.PinnedBuffer] = {}
        self._device: dict[str, cuda.DeviceBuffer] = {}
        for info in self._inputs + self._outputs:
            rest = tuple(d if d is not None else 1 for d in info.shape[1:])
            if info in self._outputs and any(d is None for d in info.shape[1:]):
                raise ModelLoadError(f"{self.path}: output {info.name} has a dynamic non-batch shape {info.shape}")
            shape = (self._max_batch,) + rest
            self._host[info.name] = cuda.PinnedBuffer(shape, info.dtype)
            self._device[info.name] = cuda.DeviceBuffer(self._host[info.name].nbytes)
            self._context.set_tensor_address(info.name, self._device[info.name].ptr)
        self._graphs: dict[int, cuda.CudaGraph] = {}
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

    def _run_chunk(self, feed: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        events = self._events
        if events:
            events[0].record(self._stream)
        for info in self._inputs:
            host = self._host[info.name]
            host.view(rows)[...] = feed[info.name]
            self._context.set_input_shape(info.name, (rows,) + feed[info.name].shape[1:])
            cuda.copy_htod_async(self._device[info.name], host, host.view(rows).nbytes, self._stream)
        if events:
            events[1].record(self._stream)
        if self.cuda_graphs:
            graph = self._graphs.get(rows)
            if graph is None:
                self._enqueue()  # one plain run first: TensorRT may allocate on the first enqueue
                graph = self._graphs[rows] = cuda.CudaGraph(self._stream, self._enqueue)
            graph.launch()
        else:
            self._enqueue()
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
            self.last_stage_ms = {"h2d": events[0].elapsed_ms(events[1]), "gpu_compute": events[1].elapsed_ms(events[2]),
                                  "d2h": events[2].elapsed_ms(events[3])}
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
            part = {k: np.ascontiguousarray(v[start:start + self.max_batch]) for k, v in feed.items()}
            chunks.append(self._run_chunk(part, len(next(iter(part.values())))))
        return {info.name: np.concatenate([c[info.name] for c in chunks]) for info in self._outputs}
