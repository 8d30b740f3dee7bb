"""PyTorch as one more backend: an ``nn.Module`` behind the runtime's ``Backend`` lifecycle.

With it the reference model goes through the same code as every deployed file — ``runtime.model.Classifier``
(batching, spec checks) and the comparison harness (``harness.compare``) — so "PyTorch vs the runtime" differs
only in the backend. It lives on the training side: ``runtime/`` never imports torch.

Like the runtime's backends it is built from the module or a zero-argument loader and does nothing until
``activate()``; it runs on the CPU in eval mode under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from runtime.backends.base import Backend, TensorInfo
from runtime.spec import METADATA_KEY, ModelSpec


class TorchBackend(Backend):
    """An eval-mode classifier taking the spec's input tensor (N, C, H, W) and returning its output (N, classes)."""

    def __init__(self, source: nn.Module | Callable[[], nn.Module], spec: ModelSpec) -> None:
        super().__init__()
        self._loader = source if not isinstance(source, nn.Module) else (lambda: source)
        self.spec = spec
        self._model: nn.Module | None = None

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        spec = self.spec
        return (TensorInfo(spec.input_name, np.dtype(spec.input_dtype.value), (None, *spec.input_shape)),)

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return (TensorInfo(self.spec.output_name, np.dtype(np.float32), (None, self.spec.num_classes)),)

    def metadata(self) -> dict[str, str]:
        """The spec, as an exported ONNX file carries it (so ``Classifier`` finds and checks it the same way)."""
        return {METADATA_KEY: self.spec.to_json()}

    def _activate(self) -> None:
        self._model = self._loader().eval()

    def _deactivate(self) -> None:
        self._model = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self._model(torch.from_numpy(feed[self.spec.input_name]))
        return {self.spec.output_name: out.numpy()}
