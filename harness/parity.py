"""The parity gate: PyTorch vs the runtime (ONNX Runtime) on the same real images.

Both sides start from the same uint8 images. PyTorch gets them through the training transform
(``runtime.preprocess.normalize`` on the whole stack); the runtime gets each image through
``runtime.preprocess.preprocess`` and its own batching — so the gate also covers preprocessing. Both sides
run through the comparison harness (``harness.compare``), PyTorch as one more backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from harness.compare import Batch, Comparison, Feed, compare_results, file_runner, run_backends, torch_runner
from runtime.spec import ModelSpec

MAX_ABS_LOGIT_DIFF = 1e-4


@dataclass(frozen=True)
class ParityReport:
    model: str
    engine: str
    comparison: Comparison  # PyTorch (the reference) vs the runtime, from the harness
    tolerance: float

    @property
    def images(self) -> int:
        return self.comparison.images

    @property
    def agreement(self) -> float:  # share of images whose top-1 class is the same on both sides
        return self.comparison.agreement

    @property
    def max_abs_diff(self) -> float:  # largest |Δlogit| over all images and classes
        return self.comparison.max_abs_diff

    @property
    def torch_accuracy(self) -> float | None:
        return self.comparison.reference_accuracy

    @property
    def runtime_accuracy(self) -> float | None:
        return self.comparison.accuracy

    @property
    def passed(self) -> bool:
        return self.agreement == 1.0 and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        names = ("model", "engine", "images", "agreement", "max_abs_diff", "torch_accuracy", "runtime_accuracy")
        return {**{name: getattr(self, name) for name in names}, "tolerance": self.tolerance, "passed": self.passed}

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


def check_parity(
    model: nn.Module,
    spec: ModelSpec,
    engine: Path,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    tolerance: float = MAX_ABS_LOGIT_DIFF,
) -> ParityReport:
    runners = [torch_runner(model, spec), file_runner(engine, "runtime", feed=Feed.PER_IMAGE)]
    results = run_backends(runners, [Batch(images, labels)])
    comparison = compare_results(results["pytorch"], results["runtime"])
    return ParityReport(model=spec.name, engine=str(engine), comparison=comparison, tolerance=tolerance)
