"""One comparison harness: several backends on the same batches, typed results (Polygraphy's Comparator shape).

``run_backends(runners, batches, timing)`` runs every runner on every batch and returns one ``RunResult`` per
runner: its outputs, the labels, and the latency of each timed call. ``compare_results(reference, candidate)``
turns two results into a ``Comparison``: top-1 agreement, max |Δlogit|, accuracy against the labels and the
per-class change. Running and comparing are separate steps, so one reference run serves many candidates.

A runner is a ``runtime.model.Classifier``: PyTorch through ``harness.torch_backend.TorchBackend``, a model file
through ``runtime.model.open_backend``, the same call ``runtime.infer`` makes. A file therefore runs with the
session setup it is deployed with (for example the graph rewrites the int8 CPU form turns off), and every latency
the parity check, the gate, the benchmarks and the sensitivity ranking report comes from that setup.

A timed call covers what its ``Feed`` names. It starts from uint8 images and includes preprocessing, or it
starts from a batch already in the model's layout (``Feed.READY``), and it ends with the model's outputs, or with
class probabilities when ``probabilities`` is set.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.model import Classifier, open_backend
from runtime.postprocess import to_probabilities
from runtime.preprocess import normalize, prepare_pixels, preprocess
from runtime.spec import ModelSpec


class Feed(str, enum.Enum):
    """How a runner turns a batch into the model's input (inside the timed call)."""

    STACK = "stack"  # prepare_pixels + normalize over the whole decoded uint8 stack: the training transform
    PER_IMAGE = "per-image"  # runtime.preprocess.preprocess image by image, as runtime.infer feeds its inputs
    READY = "ready"  # the batch is already the model's input: the timed call is inference alone


@dataclass(frozen=True)
class Runner:
    """A named classifier and how to feed it. ``batch_size`` caps the rows per backend call (None: the batch)."""

    name: str
    classifier: Classifier
    feed: Feed = Feed.STACK
    probabilities: bool = False  # end each call with runtime.postprocess.to_probabilities, as an application does
    batch_size: int | None = 256

    def __call__(self, images: np.ndarray) -> np.ndarray:
        spec = self.classifier.spec
        if self.feed is Feed.PER_IMAGE:
            batch = np.stack([preprocess(image, spec) for image in images])
        elif self.feed is Feed.STACK:
            batch = normalize(prepare_pixels(images, spec), spec)
        else:
            batch = images
        out = self.classifier.run(batch, self.batch_size)
        return to_probabilities(out, spec) if self.probabilities else out


def file_runner(path: str | os.PathLike, name: str | None = None, spec: ModelSpec | None = None, **options) -> Runner:
    """A runner for a model file (``.onnx`` or a plan), opened as ``runtime.infer`` opens it; ``spec`` None reads
    the spec beside the file or in its metadata. ``options`` are ``Runner`` fields."""
    classifier = Classifier(open_backend(path), spec, source=str(path))
    return Runner(name or Path(path).name, classifier, **options)


def torch_runner(model, spec: ModelSpec, name: str = "pytorch", **options) -> Runner:
    """A runner for an ``nn.Module`` (or a zero-argument loader of one) in eval mode on the CPU."""
    from harness.torch_backend import TorchBackend  # torch loads only for the callers that compare against it

    return Runner(name, Classifier(TorchBackend(model, spec), spec, source=f"pytorch {spec.name}"), **options)


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # uint8 pixels (N, H, W) / (N, H, W, C), or model input for Feed.READY
    labels: np.ndarray | None = None  # (N,) class indices, when known


@dataclass(frozen=True)
class Timing:
    """How each batch is timed: untimed warm-up (``warmup_calls`` calls and ``warmup_s`` seconds), then timed
    calls until there are at least ``calls`` of them and ``seconds`` have passed. The default: one timed call."""

    warmup_calls: int = 0
    warmup_s: float = 0.0
    calls: int = 1
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.calls < 1:  # every batch needs one call to have outputs at all
            raise ValueError(f"Timing.calls must be at least 1, got {self.calls}")


@dataclass
class RunResult:
    name: str
    outputs: np.ndarray  # (N, classes) over all batches in order (from the last timed call of each)
    labels: np.ndarray | None  # (N,), or None when any batch came without labels
    latencies_ms: list[list[float]]  # per batch, every timed call in milliseconds
    batch_sizes: list[int]

    @property
    def top1(self) -> np.ndarray:
        return self.outputs.argmax(1)

    @property
    def accuracy(self) -> float | None:
        return None if self.labels is None else float((self.top1 == self.labels).mean())

    def median_ms(self, batch: int = 0) -> float:
        """Median latency of the ``batch``-th batch's timed calls."""
        return float(np.median(self.latencies_ms[batch]))


@dataclass(frozen=True)
class ClassChange:
    label: str
    images: int
    reference: float  # the reference's accuracy on this class
    accuracy: float  # the candidate's
    change_pp: float  # candidate − reference, percentage points


@dataclass(frozen=True)
class Comparison:
    reference: str
    candidate: str
    images: int
    agreement: float  # share of samples whose top-1 class is the same on both sides
    max_abs_diff: float  # largest |Δoutput| over all samples and classes
    mean_squared_diff: float  # mean (Δoutput)², over all samples and classes
    reference_accuracy: float | None  # against the labels, when there are labels
    accuracy: float | None
    per_class: tuple[ClassChange, ...] = ()  # only with labels and class names


def _timed(runner: Runner, images: np.ndarray, timing: Timing) -> tuple[np.ndarray, list[float]]:
    end = time.perf_counter() + timing.warmup_s
    for _ in range(timing.warmup_calls):
        runner(images)
    while time.perf_counter() < end:
        runner(images)
    samples: list[float] = []
    end = time.perf_counter() + timing.seconds
    while len(samples) < timing.calls or time.perf_counter() < end:
        start = time.perf_counter()
        out = runner(images)
        samples.append((time.perf_counter() - start) * 1e3)
    return out, samples


def run_backends(
    runners: Sequence[Runner], batches: Iterable[Batch], timing: Timing | None = None
) -> dict[str, RunResult]:
    """Every runner on every batch, one runner after the other; name → result in the runners' order.

    A runner whose classifier is not active yet is activated here and deactivated afterwards; one already
    active (a caller timing several rounds) is left as it is."""
    names = [r.name for r in runners]
    if len(set(names)) != len(names):
        raise ValueError(f"runner names must be unique, got {names}")
    timing = timing or Timing()
    batches = list(batches)
    labelled = batches and all(b.labels is not None for b in batches)
    labels = np.concatenate([b.labels for b in batches]) if labelled else None
    results = {}
    with ExitStack() as stack:
        for runner in runners:
            if not runner.classifier.backend.active:
                stack.enter_context(runner.classifier)
        for runner in runners:
            outputs, latencies = [], []
            for batch in batches:
                out, samples = _timed(runner, batch.images, timing)
                outputs.append(out)
                latencies.append(samples)
            results[runner.name] = RunResult(
                runner.name, np.concatenate(outputs), labels, latencies, [len(b.images) for b in batches]
            )
    return results


def per_class_change(
    labels: np.ndarray, reference: np.ndarray, predicted: np.ndarray, names: Sequence[str]
) -> tuple[ClassChange, ...]:
    """Accuracy per class of the reference's and the candidate's top-1 predictions (classes without samples left
    out)."""
    rows = []
    for index, name in enumerate(names):
        mask = labels == index
        if not mask.any():
            continue
        ref, got = float((reference[mask] == index).mean()), float((predicted[mask] == index).mean())
        rows.append(ClassChange(name, int(mask.sum()), ref, got, 100.0 * (got - ref)))
    return tuple(rows)


def compare_results(reference: RunResult, candidate: RunResult, class_names: Sequence[str] = ()) -> Comparison:
    """The candidate against the reference on the same samples (and against the labels, when there are some)."""
    if reference.outputs.shape != candidate.outputs.shape:
        raise ValueError(
            f"{candidate.name} returned outputs {candidate.outputs.shape}, {reference.name} {reference.outputs.shape}; "
            "compare results of the same batches"
        )
    diff = candidate.outputs.astype(np.float64) - reference.outputs
    ref_top, top = reference.top1, candidate.top1
    labels = candidate.labels
    per_class = per_class_change(labels, ref_top, top, class_names) if labels is not None else ()
    return Comparison(
        reference=reference.name,
        candidate=candidate.name,
        images=len(top),
        agreement=float((top == ref_top).mean()),
        max_abs_diff=float(np.abs(diff).max()),
        mean_squared_diff=float(np.mean(diff**2)),
        reference_accuracy=reference.accuracy,
        accuracy=candidate.accuracy,
        per_class=per_class,
    )
