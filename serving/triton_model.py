"""The Triton Python-backend model that serves one classifier with this runtime.

``python -m serving.repository --backend python`` writes a ``model.py`` that only re-exports
``TritonPythonModel`` from here, so the serving code is versioned with the runtime it calls.
Inside the server it opens ``<model>/<version>/model.onnx`` (ONNX Runtime: CPU by default, the
CUDA execution provider on a ``KIND_GPU`` instance where onnxruntime-gpu is installed) or
``model.plan`` (TensorRT), with the ModelSpec in ``<model>/spec.json``.

A request carries exactly one of two inputs:

- ``IMAGE``: encoded images (BYTES, shape ``(n, 1)``: PNG, JPEG, … as a camera or phone sends
  them, raw or base64 as a JSON request carries them), decoded and preprocessed on the server exactly as
  ``runtime.preprocess`` does;
- the spec's input tensor (e.g. ``input``, float32 ``(n, C, H, W)``), already preprocessed.

Triton's dynamic batching hands ``execute`` several requests at once; their samples run as one
batch and each request gets ``PROBABILITIES`` ``(n, classes)``, ``TOP_K_LABELS`` (BYTES) and
``TOP_K_INDICES`` (int32) ``(n, k)``. Every request is validated on its own before the batch runs (not an
image, empty bytes, both or neither input, a tensor with NaN/Inf or of the wrong shape): a bad request gets its own
one-line error response and the other requests of the batch are answered normally. Should the batch still fail,
each request is run alone, so one request can never fail its neighbours; no traceback or server path reaches a
client.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.errors import InputError, RuntimeToolkitError
from runtime.model import Classifier, open_backend
from runtime.postprocess import to_probabilities
from runtime.preprocess import decode_image, preprocess
from runtime.spec import ModelSpec

IMAGE_INPUT = "IMAGE"
PROBABILITIES = "PROBABILITIES"
TOP_K_LABELS = "TOP_K_LABELS"
TOP_K_INDICES = "TOP_K_INDICES"
SPEC_FILE = "spec.json"

Outcome = dict[str, np.ndarray] | InputError


@dataclass(frozen=True)
class ServedModelSettings:
    """The config's ``parameters``: which file to open, how many labels to return, how to run it."""

    model_file: str = "model.onnx"
    top_k: int = 5
    providers: str = "auto"  # "auto": CUDA EP on a GPU instance when available, else CPU; or a comma list
    threads: int | None = None
    max_model_batch: int | None = None  # the model file's own batch limit (a fixed-batch ONNX, a plan's profile)

    @classmethod
    def from_config(cls, config: Mapping) -> ServedModelSettings:
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        as_int = lambda key: int(params[key]) if params.get(key) else None  # noqa: E731
        return cls(
            model_file=params.get("model_file") or cls.model_file,
            top_k=as_int("top_k") or cls.top_k,
            providers=params.get("providers") or cls.providers,
            threads=as_int("threads"),
            max_model_batch=as_int("max_model_batch"),
        )


def choose_providers(setting: str, instance_kind: str, device_id: int = 0) -> list[str] | None:
    """ONNX Runtime providers for this instance; None means the runtime's default (CPU). A GPU instance's CUDA
    provider runs on the GPU Triton gave it (``model_instance_device_id``), not always GPU 0."""
    if setting != "auto":
        return [p.strip() for p in setting.split(",") if p.strip()] or None
    if instance_kind.upper() != "GPU":
        return None
    from runtime.backends.onnxruntime import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        return None
    return [f"CUDAExecutionProvider:{int(device_id)}", "CPUExecutionProvider"]


def request_samples(inputs: Mapping[str, np.ndarray | None], spec: ModelSpec, name: str) -> np.ndarray:
    """One request's inputs → its ``(n, C, H, W)`` samples; InputError naming the request and item."""
    images, tensor = inputs.get(IMAGE_INPUT), inputs.get(spec.input_name)
    if (images is None) == (tensor is None):
        got = "both" if images is not None else "neither"
        raise InputError(
            f"{name}: send exactly one of {IMAGE_INPUT!r} (encoded image bytes, shape (n, 1)) or "
            f"{spec.input_name!r} (preprocessed {spec.input_dtype.value} (n, {spec.channels}, "
            f"{spec.height}, {spec.width})); got {got}"
        )
    if tensor is not None:
        return _checked_tensor(np.ascontiguousarray(tensor), spec, name)
    items = images.reshape(len(images), -1)
    if items.shape[1] != 1:
        raise InputError(f"{name}: {IMAGE_INPUT!r} has shape {images.shape}; expected one encoded image per row (n, 1)")
    return np.stack(
        [preprocess(decode_image(_as_bytes(item), f"{name} image {i}"), spec) for i, item in enumerate(items[:, 0])]
    )


def _checked_tensor(tensor: np.ndarray, spec: ModelSpec, name: str) -> np.ndarray:
    """Triton checks dtype and dims against the config; the values are ours to check, per request."""
    want = (spec.channels, spec.height, spec.width)
    if tensor.ndim != 4 or tensor.shape[1:] != want or len(tensor) == 0:
        raise InputError(
            f"{name}: {spec.input_name!r} has shape {tensor.shape}; expected (n, {', '.join(map(str, want))})"
        )
    if tensor.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(tensor.reshape(len(tensor), -1)).all(axis=1))
        if len(bad):
            raise InputError(
                f"{name}: {spec.input_name!r} sample(s) {bad[:10].tolist()} hold NaN or Inf; send finite values "
                "(preprocessed as the model's spec.json says)"
            )
    return tensor


_BASE64 = re.compile(rb"(?:data:image/[\w.+-]+;base64,)?([A-Za-z0-9+/\r\n]+={0,2})\s*")


def _as_bytes(item: object) -> object:
    """The encoded image of one ``IMAGE`` element: raw bytes (tritonclient, the binary-data extension) or the
    same bytes in base64 (a JSON request, as ``curl -d`` sends it; a ``data:image/…;base64,`` prefix is fine).
    No PNG, JPEG, … file starts with base64 text, so the two cannot be confused."""
    data = bytes(item) if isinstance(item, (np.bytes_, bytearray, memoryview)) else item
    if isinstance(data, bytes) and len(data) >= 8 and (match := _BASE64.fullmatch(data)):
        try:
            return base64.b64decode(match.group(1), validate=False)
        except binascii.Error:
            return data
    return data


class BatchRunner:
    """Runs many requests' samples as one batch; one outcome per request, in order."""

    def __init__(self, classifier: Classifier, top_k: int, max_model_batch: int | None = None) -> None:
        self.classifier = classifier
        self.spec = classifier.spec
        self.top_k = max(1, min(top_k, self.spec.num_classes))
        self.max_model_batch = max_model_batch
        self._labels = np.array([label.encode() for label in self.spec.labels], dtype=np.object_)

    def run(self, requests: Sequence[Mapping[str, np.ndarray | None]], names: Sequence[str]) -> list[Outcome]:
        outcomes: list[Outcome | int] = []
        samples = []
        for inputs, name in zip(requests, names):
            try:
                batch = request_samples(inputs, self.spec, name)
            except InputError as exc:
                outcomes.append(exc)
                continue
            samples.append(batch)
            outcomes.append(len(batch))
        if not samples:
            return outcomes  # type: ignore[return-value]
        try:
            probabilities = self._probabilities(np.concatenate(samples))
        except RuntimeToolkitError:
            if len(samples) == 1:
                raise
            return self._one_by_one(requests, names)  # a request the checks above let through: find it
        # argsort of the negated values is stable: ties keep the lower class index first, as top_k does.
        order = np.argsort(-probabilities, axis=-1, kind="stable")[:, : self.top_k].astype(np.int32)
        results, start = [], 0
        for outcome in outcomes:
            if isinstance(outcome, InputError):
                results.append(outcome)
                continue
            rows = slice(start, start + outcome)
            start += outcome
            results.append(
                {
                    PROBABILITIES: probabilities[rows],
                    TOP_K_INDICES: order[rows],
                    TOP_K_LABELS: self._labels[order[rows]],
                }
            )
        return results

    def _probabilities(self, samples: np.ndarray) -> np.ndarray:
        return to_probabilities(self.classifier.run(samples, self.max_model_batch), self.spec)

    def _one_by_one(self, requests, names) -> list[Outcome]:
        results: list[Outcome] = []
        for inputs, name in zip(requests, names):
            try:
                results.extend(self.run([inputs], [name]))
            except RuntimeToolkitError as exc:
                results.append(InputError(f"{name}: {exc}"))
        return results


class TritonPythonModel:
    """What the Python backend instantiates; see the module docstring."""

    def initialize(self, args: dict) -> None:
        self.pb = importlib.import_module("triton_python_backend_utils")  # exists only inside the backend stub
        config = json.loads(args["model_config"])
        model_dir = Path(args["model_repository"])
        settings = ServedModelSettings.from_config(config)
        spec = ModelSpec.load(model_dir / SPEC_FILE)
        path = model_dir / str(args["model_version"]) / settings.model_file
        device_id = int(args.get("model_instance_device_id") or 0)  # KIND_GPU instances: one per GPU
        providers = choose_providers(settings.providers, args.get("model_instance_kind", "CPU"), device_id)
        backend = open_backend(path, providers, settings.threads, device_id=device_id)
        self.classifier = Classifier(backend, spec, source=str(path))
        self.classifier.__enter__()
        self.runner = BatchRunner(self.classifier, settings.top_k, settings.max_model_batch)
        self.input_names = (IMAGE_INPUT, spec.input_name)

    def execute(self, requests: list) -> list:
        pb = self.pb
        inputs, names = [], []
        for request in requests:
            # One pass over the request's tensors (get_input_tensor_by_name would scan them once per name).
            inputs.append({t.name(): t.as_numpy() for t in request.inputs() if t.name() in self.input_names})
            request_id = request.request_id()
            names.append(f"request {request_id!r}" if request_id else "request")
        try:
            outcomes = self.runner.run(inputs, names)
        except Exception as exc:  # noqa: BLE001 - the server log gets the traceback; clients one line each
            import traceback

            traceback.print_exc()
            what = str(exc).splitlines()[0] if isinstance(exc, RuntimeToolkitError) else type(exc).__name__
            outcomes = [InputError(f"{name}: the model could not run this request ({what})") for name in names]
        responses = []
        for outcome in outcomes:
            if isinstance(outcome, InputError):
                responses.append(pb.InferenceResponse(output_tensors=[], error=self._error(str(outcome))))
            else:
                responses.append(
                    pb.InferenceResponse(output_tensors=[pb.Tensor(name, array) for name, array in outcome.items()])
                )
        return responses

    def _error(self, message: str):
        error_type = self.pb.TritonError
        code = getattr(error_type, "INVALID_ARG", None)  # error codes exist in Triton ≥ 23.x backends
        return error_type(message, code) if code is not None else error_type(message)

    def finalize(self) -> None:
        self.classifier.__exit__(None, None, None)
