"""Model outputs → probabilities and top-k labels, as the ModelSpec says."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formats.errors import InputError
from runtime.spec import ModelSpec, OutputKind


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one input, best first. ``probabilities`` sum to ≤ 1 (k ≤ classes)."""

    indices: tuple[int, ...]
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "probability": self.probability,
            "top_k": [
                {"index": i, "label": lab, "probability": p}
                for i, lab, p in zip(self.indices, self.labels, self.probabilities)
            ],
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64 then back to float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def to_probabilities(outputs: np.ndarray, spec: ModelSpec) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float32)
    return softmax(outputs) if spec.output_kind is OutputKind.LOGITS else outputs


def top_k(probabilities: np.ndarray, spec: ModelSpec, k: int = 1) -> list[Prediction]:
    """One Prediction per row of an (N, classes) probability array."""
    k = max(1, min(k, probabilities.shape[-1]))
    # argsort of the negated values is stable, so ties keep the lower class index first.
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [
        Prediction(
            indices=tuple(int(i) for i in row),
            labels=tuple(spec.labels[int(i)] for i in row),
            probabilities=tuple(float(probabilities[n, i]) for i in row),
        )
        for n, row in enumerate(order)
    ]


def checked_top_k(outputs: np.ndarray, spec: ModelSpec, k: int, sources: list[str]) -> list[Prediction | InputError]:
    """``top_k`` per row, except that a row with a NaN or Inf output becomes an InputError naming its source.

    A NaN logit would otherwise rank as label 0 with probability NaN (and break JSON output); it means the
    model (or its export) failed on that input, which the user must hear about.
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    finite = np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
    good = top_k(to_probabilities(outputs[finite], spec), spec, k) if finite.any() else []
    ranked = iter(good)
    return [
        next(ranked)
        if ok
        else InputError(
            f"{source}: the model produced NaN or Inf outputs for this input; the model or its export is "
            "broken (check it with `python -m calibration.gate` or re-export it)"
        )
        for ok, source in zip(finite, sources)
    ]
