"""ONNX Runtime through IOBinding: device-resident inputs and outputs, optional CUDA graphs.

Plain ``session.run(feed)`` on the CUDA execution provider allocates device memory for the inputs,
copies them, runs, allocates host memory for the outputs and copies back, every call. Here each
input shape (in practice: each batch size) gets a *slot*, made once and kept:

- input OrtValues on the device, filled from the host array with ``update_inplace``: through pinned
  host staging when this ONNX Runtime can allocate it (see ``pinned_memory_info``), else straight
  from the pageable numpy array. Then ``synchronize_inputs()`` (the CUDA EP's ``Sync``, a
  ``cudaDeviceSynchronize``): the pybind copy is a plain ``cudaMemcpy``, which from pageable memory
  may return before its DMA has landed, and ONNX Runtime's compute stream need not be ordered after it;
- output OrtValues on the device, bound with ``bind_ortvalue_output``, copied back once per call
  (``OrtValue.numpy()``); an output whose shape is not known from the batch size alone is bound by
  device and allocated by ONNX Runtime instead (that slot then gets no graph);
- its own ``IOBinding`` and ``RunOptions``.

CUDA graphs (``enable_cuda_graph=1`` on the CUDA EP, ``trt_cuda_graph_enable`` on the TensorRT EP):
ONNX Runtime captures the whole session run after its warm-up runs and replays it on later runs.
What it requires, and how this module meets it:

- IOBinding with inputs and outputs already on the device, at addresses that never change: a
  slot's OrtValues live as long as the runner and are only refilled in place;
- fixed shapes per graph: one graph per slot, told apart by the RunOptions entry ``gpu_graph_id``
  (an integer ≥ 1; ``-1`` runs that call without capture or replay, which is how batch sizes
  without a graph fall back to plain IOBinding in the same session);
- every node on the CUDA EP and no control flow (If/Loop/Scan): otherwise ONNX Runtime refuses the
  session when it is created, and the backend says so with the fix (drop ``--cuda-graph``).

On the CPU execution provider the same code runs with OrtValues on ``cpu`` (tested on every
machine; its numbers equal plain ``run``). Outputs are returned as fresh numpy arrays the caller owns.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.backends.base import TensorInfo
from runtime.providers import MAX_GRAPHS, CudaOptions

GRAPH_ID_KEY = "gpu_graph_id"  # onnxruntime_run_options_config_keys.h: kOrtRunOptionsConfigCudaGraphAnnotation
NO_GRAPH = -1


def pinned_memory_info(ort: Any) -> tuple[Any | None, str]:
    """The CUDA EP's host-accessible (pinned) memory info, or None and why not.

    ONNX Runtime's Python API has no ``"cuda_pinned"`` device for ``OrtValue`` (``OrtDevice.make``
    knows only device names, always with default memory); pinned host OrtValues come from an EP
    device's ``memory_info(OrtDeviceMemoryType.HOST_ACCESSIBLE)`` (``get_ep_devices``, ONNX Runtime
    ≥ 1.23) where the CUDA EP publishes one.
    """
    if not hasattr(ort, "get_ep_devices") or not hasattr(ort, "OrtDeviceMemoryType"):
        return None, f"onnxruntime {ort.__version__} has no get_ep_devices()/OrtDeviceMemoryType"
    for ep_device in ort.get_ep_devices():
        if ep_device.ep_name == "CUDAExecutionProvider" and hasattr(ep_device, "memory_info"):
            info = ep_device.memory_info(ort.OrtDeviceMemoryType.HOST_ACCESSIBLE)
            if info is not None:
                return info, ""
    return None, "no CUDAExecutionProvider entry with host-accessible memory in get_ep_devices()"


@dataclass
class _Slot:
    """Everything one input shape needs, allocated once; addresses fixed for the runner's life."""

    binding: Any
    run_options: Any
    inputs: dict[str, Any]
    staging: dict[str, tuple[Any, np.ndarray]]  # name → (pinned OrtValue, numpy view of it)
    outputs: dict[str, Any]  # preallocated device outputs; empty when ONNX Runtime allocates them
    graph_id: int = NO_GRAPH


class BoundRunner:
    """Runs one session through IOBinding, one slot per input shape. Not thread-safe (one caller)."""

    def __init__(
        self,
        ort: Any,
        session: Any,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo],
        device: str,
        device_id: int,
        options: CudaOptions | None = None,
    ) -> None:
        self._ort, self._session = ort, session
        self._inputs, self._outputs = tuple(inputs), tuple(outputs)
        self.device, self.device_id = device, device_id
        options = options or CudaOptions()
        # SessionFromOnnx refuses --cuda-graph unless a GPU provider comes first; a CPU session ignores the ids
        self.graphs = options.cuda_graph
        self._graph_batches = options.graph_batches
        self._slots: dict[tuple[tuple[int, ...], ...], _Slot] = {}
        self._next_graph_id = 1
        self._pinned: Any = None
        self.staging = "none: the CPU execution provider reads host memory" if device == "cpu" else ""
        self.time_stages = False
        self.last_stage_ms: dict[str, float] = {}
        self._filled: set = set()  # shapes compute_only_ms has filled once

    # public -------------------------------------------------------------------------------

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host → device, run, device → host; with ``time_stages`` the host time of each is in ``last_stage_ms``
        (ONNX Runtime owns its CUDA stream, so these are host clocks around synchronous steps, not CUDA events:
        ``h2d`` ends with ``synchronize_inputs``, ``run`` with ONNX Runtime's own end-of-run synchronize)."""
        clock = time.perf_counter
        t0 = clock()
        key = tuple(tuple(feed[t.name].shape) for t in self._inputs)
        slot = self._slots.get(key) or self._make_slot(key)
        self._fill(slot, feed)
        t1 = clock()
        self._session.run_with_iobinding(slot.binding, slot.run_options)
        t2 = clock()
        outputs = self._read(slot)
        if self.time_stages:
            self.last_stage_ms = {"h2d": 1e3 * (t1 - t0), "run": 1e3 * (t2 - t1), "d2h": 1e3 * (clock() - t2)}
        return outputs

    def compute_only_ms(self, feed: Mapping[str, np.ndarray]) -> float:
        """The trtexec-like figure: one run on inputs already on the device (no copies in either direction),
        through this shape's CUDA graph where it has one. Host clock around the synchronous run, ms."""
        key = tuple(tuple(feed[t.name].shape) for t in self._inputs)
        slot = self._slots.get(key) or self._make_slot(key)
        if key not in self._filled:
            self._fill(slot, feed)
            self._filled.add(key)
        start = time.perf_counter()
        self._session.run_with_iobinding(slot.binding, slot.run_options)
        return 1e3 * (time.perf_counter() - start)

    def _fill(self, slot: _Slot, feed: Mapping[str, np.ndarray]) -> None:
        for name, value in slot.inputs.items():
            array = np.ascontiguousarray(feed[name])
            if name in slot.staging:  # host → pinned (memcpy), pinned → device
                stage, view = slot.staging[name]
                np.copyto(view, array)
                value.update_inplace(stage)
            else:
                value.update_inplace(array)
        if self.device != "cpu":  # the copies must have landed before ORT's own stream reads them
            slot.binding.synchronize_inputs()

    def _read(self, slot: _Slot) -> dict[str, np.ndarray]:
        if not slot.outputs:
            return dict(zip((t.name for t in self._outputs), slot.binding.copy_outputs_to_cpu()))
        # OrtValue.numpy() copies a device tensor to a new host array, but views a CPU one: copy that.
        return {
            name: value.numpy() if self.device != "cpu" else value.numpy().copy()
            for name, value in slot.outputs.items()
        }

    def report(self) -> dict:
        """What ran: device, staging, and which shapes have a CUDA graph (for result files)."""
        return {
            "io_binding": True,
            "device": f"{self.device}:{self.device_id}",
            "staging": self.staging,
            "cuda_graph": self.graphs,
            "graphs": {_describe(key): slot.graph_id for key, slot in self._slots.items() if slot.graph_id != NO_GRAPH},
        }

    # slots --------------------------------------------------------------------------------

    def _make_slot(self, key: tuple[tuple[int, ...], ...]) -> _Slot:
        ort = self._ort
        binding = self._session.io_binding()
        batch = key[0][0] if key and key[0] else 1
        inputs, staging = {}, {}
        for info, shape in zip(self._inputs, key):
            value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), info.dtype, self.device, self.device_id)
            binding.bind_ortvalue_input(info.name, value)
            inputs[info.name] = value
            stage = self._staging_for(shape, info.dtype, value)
            if stage is not None:
                staging[info.name] = stage
        outputs = {}
        shapes = [_output_shape(info, batch) for info in self._outputs]
        if all(shape is not None for shape in shapes):
            for info, shape in zip(self._outputs, shapes):
                value = ort.OrtValue.ortvalue_from_shape_and_type(shape, info.dtype, self.device, self.device_id)
                binding.bind_ortvalue_output(info.name, value)
                outputs[info.name] = value
        else:  # an output's size depends on more than the batch: ONNX Runtime allocates it on the device
            for info in self._outputs:
                binding.bind_output(info.name, self.device, self.device_id)
        run_options = ort.RunOptions()
        graph_id = self._graph_id(batch) if outputs else NO_GRAPH
        if self.graphs:  # with enable_cuda_graph every run names its graph, or -1 for none
            run_options.add_run_config_entry(GRAPH_ID_KEY, str(graph_id))
        slot = _Slot(binding, run_options, inputs, staging, outputs, graph_id)
        self._slots[key] = slot
        return slot

    def _graph_id(self, batch: int) -> int:
        if not self.graphs:
            return NO_GRAPH
        graphed = sum(slot.graph_id != NO_GRAPH for slot in self._slots.values())
        wanted = batch in self._graph_batches if self._graph_batches is not None else graphed < MAX_GRAPHS
        if not wanted:
            return NO_GRAPH
        graph_id, self._next_graph_id = self._next_graph_id, self._next_graph_id + 1
        return graph_id

    def _staging_for(self, shape: tuple[int, ...], dtype: np.dtype, device_value: Any) -> tuple[Any, np.ndarray] | None:
        """A pinned host OrtValue and its numpy view for one input, or None (pageable copies)."""
        if self.device == "cpu" or self.staging.startswith("pageable"):
            return None
        try:  # any failure here, get_ep_devices() included, only costs speed: fall back to pageable copies
            if self._pinned is None:
                self._pinned, why = pinned_memory_info(self._ort)
                if self._pinned is None:
                    self.staging = f"pageable: {why}"
                    return None
            stage = self._ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, memory_info=self._pinned)
            view = stage.numpy()
            if view.__array_interface__["data"][0] != stage.data_ptr():
                raise ValueError("OrtValue.numpy() of host-accessible memory is a copy, not a view")
            device_value.update_inplace(stage)  # OrtValue → OrtValue copies need a newer onnxruntime
        except Exception as exc:
            self.staging = f"pageable: pinned staging failed ({type(exc).__name__}: {str(exc)[:120]})"
            return None
        self.staging = "pinned: ONNX Runtime host-accessible OrtValue"
        return stage, view


def _output_shape(info: TensorInfo, batch: int) -> list[int] | None:
    """The output's shape for this batch size when only the batch dimension is dynamic."""
    shape = [batch if i == 0 and d is None else d for i, d in enumerate(info.shape)]
    return None if any(d is None for d in shape) else shape


def _describe(key: tuple[tuple[int, ...], ...]) -> str:
    return ";".join("x".join(str(d) for d in shape) for shape in key)
