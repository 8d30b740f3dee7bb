"""The parity gate: PyTorch vs the runtime (ONNX Runtime) on the same real images.

Both sides start from the same uint8 images. PyTorch gets them through the training transform
(``runtime.preprocess.normalize`` on the whole stack); the runtime gets each image through
``runtime.preprocess.preprocess`` and its own batching — so the gate also covers preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime.model import Classifier
from runtime.preprocess import normalize, preprocess
from runtime.spec import ModelSpec
from train.loop import predict_logits

MAX_ABS_LOGIT_DIFF = 1e-4


@dataclass(frozen=True)
class ParityReport:
    model: str
    engine: str
    images: int
    agreement: float  # share of images whose top-1 class is the same on both sides
    max_abs_diff: float  # largest |Δlogit| over all images and classes
    torch_accuracy: float | None
    runtime_accuracy: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.agreement == 1.0 and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        acc = ""
        if self.torch_accuracy is not None:
            acc = f", accuracy torch {self.torch_accuracy:.4f} / runtime {self.runtime_accuracy:.4f}"
        return (
            f"parity {verdict} {self.model} vs {Path(self.engine).name}: top-1 agreement "
            f"{self.agreement:.2%} on {self.images} images, max |Δlogit| {self.max_abs_diff:.2e} "
            f"(budget {self.tolerance:g}){acc}"
        )


def torch_logits(model: nn.Module, images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    return predict_logits(model, torch.from_numpy(normalize(images, spec))).numpy()


def runtime_logits(engine: Path, images: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    with Classifier.from_path(engine) as classifier:
        batch = np.stack([preprocess(img, classifier.spec) for img in images])
        return classifier.run(batch, batch_size)


def check_parity(
    model: nn.Module,
    spec: ModelSpec,
    engine: Path,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    tolerance: float = MAX_ABS_LOGIT_DIFF,
) -> ParityReport:
    ref = torch_logits(model, images, spec)
    got = runtime_logits(engine, list(images))
    ref_top, got_top = ref.argmax(1), got.argmax(1)
    return ParityReport(
        model=spec.name,
        engine=str(engine),
        images=len(images),
        agreement=float((ref_top == got_top).mean()),
        max_abs_diff=float(np.abs(ref - got).max()),
        torch_accuracy=None if labels is None else float((ref_top == labels).mean()),
        runtime_accuracy=None if labels is None else float((got_top == labels).mean()),
        tolerance=tolerance,
    )
