"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when installed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from runtime.backends.base import Backend, TensorInfo
from runtime.errors import ModelLoadError

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


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError(
            "onnxruntime is not installed; install it with `pip install .[runtime]`"
        ) from None
    return onnxruntime


def available_providers() -> list[str]:
    return list(_onnxruntime().get_available_providers())


# A model may name ONNX Runtime graph transformers to leave off for it (comma-separated), e.g. the
# CPU int8 form keeps its first Quantize below a MaxPool that would otherwise run a slow uint8 kernel.
DISABLED_OPTIMIZERS_KEY = "edge_toolkit.ort_disabled_optimizers"


class SessionFromOnnx:
    """Lazy loader: calling it creates an ``onnxruntime.InferenceSession`` for ``path``.

    ``providers`` None means CPU only (the default that works everywhere); names that this
    onnxruntime build lacks are refused with the list of those it has. ``threads`` None lets
    ONNX Runtime choose the intra-op thread count.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads

    def __call__(self) -> Any:
        ort = _onnxruntime()
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: model file not found; check the --engine path")
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise ModelLoadError(
                f"ONNX Runtime provider(s) {missing} are not available in this install; "
                f"available: {ort.get_available_providers()}"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
            disabled = session.get_modelmeta().custom_metadata_map.get(DISABLED_OPTIMIZERS_KEY, "")
            if disabled:  # the file asks for graph rewrites that would undo its int8 form (see calibration)
                options.add_session_config_entry("optimization.disable_specified_optimizers", disabled)
                session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
            return session
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{self.path}: ONNX Runtime cannot load this file as an ONNX model ({first_line}); "
                "re-export it with `python -m export` or check that it is the right file"
            ) from None


class OnnxRuntimeBackend(Backend):
    """Runs an ONNX model with ONNX Runtime. Built from a path or a loader; loads on activate."""

    def __init__(self, source: str | os.PathLike | Callable[[], Any], **loader_args: Any) -> None:
        super().__init__()
        self._loader = source if callable(source) else SessionFromOnnx(source, **loader_args)
        self._session: Any = None
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

    def _deactivate(self) -> None:
        self._session = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self._output_names
        return dict(zip(names, self._session.run(names, feed if type(feed) is dict else dict(feed))))


def _info(node: Any) -> TensorInfo:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"model tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorInfo(node.name, np.dtype(dtype), shape)
