"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when installed.

Providers go through ``runtime.providers.parse_providers`` (``cpu``, ``cuda:1``, full names). On a GPU
provider the backend runs through IOBinding (``ort_binding.BoundRunner``: device-resident inputs and
outputs per batch size, optional ONNX Runtime CUDA graphs); on the CPU it calls ``session.run``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from formats.artifacts import ORT_DISABLED_OPTIMIZERS_KEY
from formats.errors import ModelLoadError
from runtime.backends.base import Backend, TensorInfo
from runtime.backends.ort_binding import BoundRunner
from runtime.providers import GPU_PROVIDERS, CudaOptions, Provider, ProviderError, parse_providers, session_providers
from runtime.providers import onnxruntime_module as _onnxruntime

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    return list(_onnxruntime().get_available_providers())


# A model may name ONNX Runtime graph transformers to leave off for it (comma-separated), e.g. the
# CPU int8 form keeps its first Quantize below a MaxPool that would otherwise run a slow uint8 kernel.
DISABLED_OPTIMIZERS_KEY = ORT_DISABLED_OPTIMIZERS_KEY


class SessionFromOnnx:
    """Lazy loader: calling it creates an ``onnxruntime.InferenceSession`` for ``path``.

    ``providers`` None means CPU only (the default that works everywhere); a string or list goes
    through ``parse_providers`` (shorthands, ``cuda:N``, full names), and names this onnxruntime build
    lacks are refused with the list of those it has. ``threads`` None lets ONNX Runtime choose the
    intra-op thread count. ``cuda`` adds the CUDA EP's provider options (CUDA graph, TF32).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        cuda: CudaOptions | None = None,
    ) -> None:
        self.path = Path(path)
        self.providers = providers
        self.threads = threads
        self.cuda = cuda or CudaOptions()
        self.chosen: tuple[Provider, ...] = ()

    def __call__(self) -> Any:
        ort = _onnxruntime()
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: model file not found; check the --engine path")
        self.chosen = parse_providers(self.providers)
        if self.cuda.cuda_graph and not self.chosen[0].on_gpu:
            raise ProviderError(
                f"--cuda-graph needs a GPU provider first (--providers cuda), got "
                f"--providers {','.join(p.short() for p in self.chosen)}"
            )
        providers = session_providers(self.chosen, self.cuda)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
            disabled = session.get_modelmeta().custom_metadata_map.get(DISABLED_OPTIMIZERS_KEY, "")
            if disabled:  # the file asks for graph rewrites that would undo its int8 form (see calibration)
                options.add_session_config_entry("optimization.disable_specified_optimizers", disabled)
                session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self.chosen[0].on_gpu:
                raise ModelLoadError(
                    f"{self.path}: ONNX Runtime cannot create a session on {self.chosen[0].short()} ({first_line}); "
                    + (
                        "drop --cuda-graph (it needs every node on the CUDA EP and no If/Loop/Scan) or "
                        if self.cuda.cuda_graph
                        else ""
                    )
                    + "check the GPU with `python -m runtime.doctor`"
                ) from None
            raise ModelLoadError(
                f"{self.path}: ONNX Runtime cannot load this file as an ONNX model ({first_line}); "
                "re-export it with `python -m export` or check that it is the right file"
            ) from None
        wanted = self.chosen[0].name
        if wanted not in session.get_providers():  # ONNX Runtime falls back to the CPU with only a log line
            raise ProviderError(
                f"--providers {self.chosen[0].short()}: ONNX Runtime could not start {wanted} and fell back to "
                f"{session.get_providers()}; its CUDA/cuDNN libraries are missing or do not match the "
                "onnxruntime-gpu build (see `python -m runtime.doctor`)"
            )
        return session


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime. Built from a path or a loader; loads on activate.

    ``cuda`` (see ``CudaOptions``) picks IOBinding and CUDA graphs; with a path it also becomes the
    session's provider options, with a loader the loader owns those.
    """

    def __init__(
        self, source: str | os.PathLike | Callable[[], Any], cuda: CudaOptions | None = None, **loader_args: Any
    ) -> None:
        super().__init__()
        self._cuda = cuda or CudaOptions()
        self._loader = source if callable(source) else SessionFromOnnx(source, cuda=self._cuda, **loader_args)
        self._runner: BoundRunner | None = None
        self._session: Any = None
        self.time_stages = False  # host time of each stage of the last call in last_stage_ms
        self.last_stage_ms: dict[str, float] = {}
        self._inputs: tuple[TensorInfo, ...] = ()
        self._outputs: tuple[TensorInfo, ...] = ()

    @property
    def session(self) -> Any:
        return self._session

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return self._outputs

    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props`` (read by ONNX Runtime; no ``onnx`` import)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def _activate(self) -> None:
        self._session = self._loader()
        self._inputs = tuple(_info(x) for x in self._session.get_inputs())
        self._outputs = tuple(_info(x) for x in self._session.get_outputs())
        self._output_names = [t.name for t in self._outputs]
        provider = self._session.get_providers()[0]
        if self._cuda.wants_binding(Provider(provider)) and provider in (*GPU_PROVIDERS, "CPUExecutionProvider"):
            device_id = int(self._provider_options(provider).get("device_id") or 0)
            device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
            self._runner = BoundRunner(
                _onnxruntime(), self._session, self._inputs, self._outputs, device, device_id, self._cuda
            )

    def _deactivate(self) -> None:
        self._runner = None  # its OrtValues and bindings (and captured graphs' buffers) go with it
        self._session = None

    def _provider_options(self, provider: str) -> dict[str, str]:
        options = self._session.get_provider_options() if hasattr(self._session, "get_provider_options") else {}
        return dict(options.get(provider, {}))

    def execution(self) -> dict:
        """How the session runs, for result files: providers, IOBinding, staging, CUDA graphs, TF32."""
        if self._session is None:
            raise RuntimeError("OnnxRuntimeBackend.execution() is known once the backend is active")
        provider = self._session.get_providers()[0]
        options = self._provider_options(provider)
        report: dict[str, Any] = {"providers": list(self._session.get_providers()), "io_binding": False}
        if provider == "CUDAExecutionProvider":  # use_tf32 as ONNX Runtime resolved it ("1" by default)
            report["tf32"] = options["use_tf32"] not in ("0", "false", "False") if "use_tf32" in options else None
            report["tf32_source"] = "requested" if self._cuda.tf32 is not None else "onnxruntime default"
        if self._runner is not None:
            report.update(self._runner.report())
        return report

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._runner is not None:
            self._runner.time_stages = self.time_stages
            outputs = self._runner.run(feed)
            self.last_stage_ms = self._runner.last_stage_ms
            return outputs
        names = self._output_names
        start = time.perf_counter()
        outputs = dict(zip(names, self._session.run(names, feed if type(feed) is dict else dict(feed))))
        if self.time_stages:  # plain run: copies, compute and synchronize are one call inside ONNX Runtime
            self.last_stage_ms = {"run": 1e3 * (time.perf_counter() - start)}
        return outputs

    def compute_only_ms(self, feed: Mapping[str, np.ndarray]) -> float | None:
        """The trtexec-like figure (inputs on the device, no copies, graphs where enabled): IOBinding only; None
        for a plain ``run`` session, whose copies cannot be separated from its compute."""
        return self._runner.compute_only_ms(feed) if self._runner is not None else None


def _info(node: Any) -> TensorInfo:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"model tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorInfo(node.name, np.dtype(dtype), shape)
