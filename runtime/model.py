"""A deployed classifier: a backend plus the ModelSpec that says how to feed and read it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.backends.base import Backend
from runtime.bundle import verify_beside
from runtime.errors import SpecError
from runtime.postprocess import Prediction, to_probabilities, top_k
from runtime.preprocess import ImageInput, preprocess
from runtime.providers import CudaOptions
from runtime.spec import METADATA_KEY, ModelSpec, sidecar_candidates, spec_from_sidecar

PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def open_backend(
    path: str | os.PathLike, providers: str | Sequence[str] | None = None, threads: int | None = None,
    cuda: CudaOptions | None = None,
) -> Backend:
    """The backend for a model file, chosen by its suffix (not yet activated). In a deploy bundle the file and
    the bundle's small files are first checked against its SHA256SUMS (``runtime.bundle``).

    ``providers``, ``threads`` and ``cuda`` (IOBinding, CUDA graphs, TF32) apply to ONNX files;
    ``providers`` goes through ``runtime.providers.parse_providers`` (``cpu``, ``cuda:1``, full names).
    """
    path = Path(path)
    verify_beside(path)
    if path.suffix.lower() in PLAN_SUFFIXES:
        from runtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path)
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, cuda=cuda, providers=providers, threads=threads)


def find_spec(path: Path, backend: Backend) -> ModelSpec:
    """The spec beside the model file, else the one embedded in the ONNX metadata."""
    spec = spec_from_sidecar(path)
    if spec is not None:
        return spec
    metadata = backend.metadata() if hasattr(backend, "metadata") else {}
    if METADATA_KEY in metadata:
        return ModelSpec.from_json(metadata[METADATA_KEY], source=f"{path} (metadata {METADATA_KEY})")
    looked = ", ".join(str(p) for p in sidecar_candidates(path))
    raise SpecError(
        f"{path}: no ModelSpec found (looked for {looked} and the ONNX metadata key {METADATA_KEY!r}); "
        "copy the model's .json spec next to it or re-export with `python -m export`"
    )


def check_spec_matches(spec: ModelSpec, backend: Backend, source: str) -> None:
    """Refuse a spec that does not describe this model's input and output tensors."""
    inputs = {t.name: t for t in backend.inputs}
    outputs = {t.name: t for t in backend.outputs}
    if spec.input_name not in inputs or spec.output_name not in outputs:
        raise SpecError(
            f"{source}: spec names input {spec.input_name!r} / output {spec.output_name!r} but the model "
            f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}; the spec belongs to another model"
        )
    shape = inputs[spec.input_name].shape
    want = (None,) + spec.input_shape
    if len(shape) != 4 or any(s is not None and w is not None and s != w for s, w in zip(shape, want)):
        raise SpecError(
            f"{source}: model input shape {shape} does not match the spec's (N, {spec.channels}, "
            f"{spec.height}, {spec.width}); the spec belongs to another model"
        )
    classes = outputs[spec.output_name].shape[-1]
    if classes is not None and classes != spec.num_classes:
        raise SpecError(
            f"{source}: model outputs {classes} classes but the spec lists {spec.num_classes} labels"
        )


class Classifier:
    """Preprocess → batched inference → probabilities, for one model. A context manager."""

    def __init__(self, backend: Backend, spec: ModelSpec | None = None, source: str = "model") -> None:
        self.backend = backend
        self._spec = spec
        self.source = source

    @classmethod
    def from_path(
        cls, path: str | os.PathLike, providers: str | Sequence[str] | None = None, threads: int | None = None,
        cuda: CudaOptions | None = None,
    ) -> "Classifier":
        return cls(open_backend(path, providers, threads, cuda), source=str(path))

    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            raise RuntimeError("Classifier.spec is known once the classifier is active")
        return self._spec

    def __enter__(self) -> "Classifier":
        self.backend.activate()
        try:
            if self._spec is None:
                self._spec = find_spec(Path(self.source), self.backend)
            check_spec_matches(self._spec, self.backend, self.source)
        except BaseException:
            self.backend.deactivate()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.backend.deactivate()

    def run(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw model outputs for a preprocessed (N, C, H, W) batch, run ``batch_size`` at a time."""
        if not batch_size or batch_size >= len(batch):  # the common case: one call, no copies
            if len(batch):
                return self.backend.infer({self.spec.input_name: batch})[self.spec.output_name]
        step = batch_size or len(batch)
        chunks = [
            self.backend.infer({self.spec.input_name: batch[i : i + step]})[self.spec.output_name]
            for i in range(0, len(batch), step)
        ]
        if len(chunks) == 1:
            return chunks[0]
        return np.concatenate(chunks) if chunks else np.empty((0, self.spec.num_classes), np.float32)

    def predict(self, items: Sequence[ImageInput], k: int = 1, batch_size: int = 32) -> list[Prediction]:
        """Top-k predictions for inputs that are known to be good (raises on the first bad one)."""
        batch = np.stack([preprocess(item, self.spec) for item in items])
        return top_k(to_probabilities(self.run(batch, batch_size), self.spec), self.spec, k)
