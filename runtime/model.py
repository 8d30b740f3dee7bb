"""A deployed classifier: a backend plus the ModelSpec that says how to feed and read it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from formats.artifacts import is_plan
from formats.bundle import verify_beside
from formats.errors import ModelLoadError, SpecError
from formats.files import open_regular
from formats.writer import Look, identify
from runtime.backends.base import Backend
from runtime.postprocess import Prediction, to_probabilities, top_k
from runtime.preprocess import ImageInput, preprocess
from runtime.providers import CudaOptions
from runtime.spec import METADATA_KEY, ModelSpec, sidecar_candidates, spec_from_sidecar


def open_backend(
    path: str | os.PathLike,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    cuda: CudaOptions | None = None,
    device_id: int = 0,
) -> Backend:
    """The backend for a model file, chosen by its suffix (not yet activated). In a deploy bundle the file and
    the bundle's small files are first checked against its SHA256SUMS (``formats.bundle``).

    ``providers``, ``threads`` and ``cuda`` (IOBinding, CUDA graphs, TF32) apply to ONNX files;
    ``providers`` goes through ``runtime.providers.parse_providers`` (``cpu``, ``cuda:1``, full names), which
    carry the GPU of an ONNX file; ``device_id`` is the GPU a plan runs on.
    """
    path = Path(path)
    if os.path.lexists(path):  # a FIFO would hang the backend's read; no permission is not "re-export it"
        open_regular(path, "a model file (.onnx or .plan)", ModelLoadError).close()
        refuse_checkpoint(path)
    verify_beside(path)
    if is_plan(path):
        from runtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(path, device_id=device_id)
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, cuda=cuda, providers=providers, threads=threads)


def refuse_checkpoint(path: Path) -> None:
    """A training checkpoint given where a model belongs gets the obvious cause, not "not an ONNX model"."""
    if identify(path) is Look.CHECKPOINT:
        raise ModelLoadError(
            f"{path}: this is a checkpoint (PyTorch weights), not a model the runtime runs; export it first: "
            f"`edge export --checkpoint {path}` writes the .fp32.onnx beside it"
        )


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


def check_embedded_agrees(spec: ModelSpec, backend: Backend, source: str) -> None:
    """Refuse a sidecar spec that contradicts the spec embedded in the model: with reversed labels it would
    print a wrong label for every input. (A model without an embedded spec — a plan — has nothing to compare.)"""
    metadata = backend.metadata() if hasattr(backend, "metadata") else {}
    if METADATA_KEY not in metadata:
        return
    try:
        embedded = ModelSpec.from_json(metadata[METADATA_KEY], source=f"{source} (metadata {METADATA_KEY})")
    except SpecError:
        return  # an unreadable embedded spec: the sidecar is the only one there is
    if embedded == spec:
        return
    differ = [f.name for f in dataclasses.fields(ModelSpec) if getattr(embedded, f.name) != getattr(spec, f.name)]
    sidecars = " or ".join(str(p) for p in sidecar_candidates(source))
    raise SpecError(
        f"{source}: the spec beside it ({sidecars}) differs from the spec embedded in the model in "
        f"{', '.join(differ)}; a stale or edited sidecar mislabels results: delete it (the embedded spec is "
        "then used) or re-export the model"
    )


def check_spec_matches(spec: ModelSpec, backend: Backend, source: str) -> None:
    """Refuse a spec that does not describe this model's input and output tensors — before the first batch,
    so a mismatch is one message naming the difference instead of a crash inside the backend."""
    inputs = {t.name: t for t in backend.inputs}
    outputs = {t.name: t for t in backend.outputs}
    if spec.input_name not in inputs or spec.output_name not in outputs:
        raise SpecError(
            f"{source}: spec names input {spec.input_name!r} / output {spec.output_name!r} but the model "
            f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}; the spec belongs to another model"
        )
    tensor = inputs[spec.input_name]
    shape = tensor.shape
    want = (None,) + spec.input_shape
    if (
        len(shape) == 4
        and _fits(shape[1:], (spec.height, spec.width, spec.channels))
        and not _fits(shape[1:], spec.input_shape)
    ):
        raise SpecError(
            f"{source}: the model takes channels-last (NHWC) input {shape} but the runtime feeds NCHW "
            f"(N, {spec.channels}, {spec.height}, {spec.width}); export the model with NCHW input"
        )
    if len(shape) != 4 or not _fits(shape, want):
        raise SpecError(
            f"{source}: model input shape {shape} does not match the spec's (N, {spec.channels}, "
            f"{spec.height}, {spec.width}); the spec belongs to another model"
        )
    expected_dtype = np.dtype(spec.input_dtype.value)
    if tensor.dtype is not None and np.dtype(tensor.dtype) != expected_dtype:
        raise SpecError(
            f"{source}: the spec says input_dtype {spec.input_dtype.value} but the model's input "
            f"{spec.input_name!r} is {np.dtype(tensor.dtype).name}; use the spec exported with this model"
        )
    out_shape = outputs[spec.output_name].shape
    if len(out_shape) != 2:
        raise SpecError(
            f"{source}: model output {spec.output_name!r} has shape {out_shape}; a classifier must output "
            "(N, classes); re-export it with the class axis last and no extra axes"
        )
    classes = out_shape[-1]
    if classes is not None and classes != spec.num_classes:
        raise SpecError(f"{source}: model outputs {classes} classes but the spec lists {spec.num_classes} labels")


def _fits(shape: Sequence[int | None], want: Sequence[int | None]) -> bool:
    return len(shape) == len(want) and all(s is None or w is None or s == w for s, w in zip(shape, want))


def static_batch(backend: Backend, spec: ModelSpec) -> int | None:
    """The fixed batch size of the model's input, or None when the batch axis is dynamic."""
    shape = {t.name: t for t in backend.inputs}[spec.input_name].shape
    return shape[0] if shape and isinstance(shape[0], int) else None


class Classifier:
    """Preprocess → batched inference → probabilities, for one model. A context manager."""

    def __init__(self, backend: Backend, spec: ModelSpec | None = None, source: str = "model") -> None:
        self.backend = backend
        self._spec = spec
        self.source = source

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        cuda: CudaOptions | None = None,
    ) -> Classifier:
        return cls(open_backend(path, providers, threads, cuda), source=str(path))

    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            raise RuntimeError("Classifier.spec is known once the classifier is active")
        return self._spec

    def __enter__(self) -> Classifier:
        self.backend.activate()
        try:
            if self._spec is None:
                self._spec = find_spec(Path(self.source), self.backend)
            check_spec_matches(self._spec, self.backend, self.source)
            check_embedded_agrees(self._spec, self.backend, self.source)
        except BaseException:
            self.backend.deactivate()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.backend.deactivate()

    @property
    def static_batch(self) -> int | None:
        """The model's fixed batch size (a static-batch export), or None when any batch size is accepted."""
        return static_batch(self.backend, self.spec)

    def run(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw model outputs for a preprocessed (N, C, H, W) batch, run ``batch_size`` at a time.

        A static-batch model (input ``[1, C, H, W]``) is fed exactly its batch size per call, the last call
        padded with zeros whose outputs are dropped, instead of failing inside the backend for N > 1.
        """
        fixed = self.static_batch
        if fixed is not None and len(batch) != fixed:
            return self._run_fixed(batch, fixed)
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

    def _run_fixed(self, batch: np.ndarray, fixed: int) -> np.ndarray:
        chunks = []
        for i in range(0, len(batch), fixed):
            part = batch[i : i + fixed]
            real = len(part)
            if real < fixed:
                part = np.concatenate([part, np.zeros((fixed - real,) + part.shape[1:], part.dtype)])
            chunks.append(self.backend.infer({self.spec.input_name: part})[self.spec.output_name][:real])
        return np.concatenate(chunks) if chunks else np.empty((0, self.spec.num_classes), np.float32)

    def predict(self, items: Sequence[ImageInput], k: int = 1, batch_size: int = 32) -> list[Prediction]:
        """Top-k predictions for inputs that are known to be good (raises on the first bad one)."""
        batch = np.stack([preprocess(item, self.spec) for item in items])
        return top_k(to_probabilities(self.run(batch, batch_size), self.spec), self.spec, k)
