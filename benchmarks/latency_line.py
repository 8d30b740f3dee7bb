"""One honest latency line: our runtime vs PyTorch eager, batch 1, same process, same inputs.

Both sides start from a decoded uint8 image and end with class probabilities: PyTorch runs the
training transform + the eager model + softmax; the runtime runs its preprocessing + ONNX
Runtime + softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.timing import LatencyStats, measure
from runtime.model import Classifier
from runtime.postprocess import to_probabilities
from runtime.preprocess import normalize, preprocess
from runtime.spec import ModelSpec


@dataclass(frozen=True)
class LatencyComparison:
    model: str
    torch_eager: LatencyStats
    runtime: LatencyStats

    @property
    def speedup(self) -> float:
        return self.torch_eager.median_ms / self.runtime.median_ms

    def summary(self) -> str:
        return (
            f"latency {self.model} batch 1 (median, end to end from a decoded image): runtime ORT-CPU "
            f"{self.runtime.median_ms:.3f} ms vs PyTorch eager {self.torch_eager.median_ms:.3f} ms "
            f"-> {self.speedup:.2f}x"
        )

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "speedup": self.speedup,
            "torch_eager": self.torch_eager.to_dict(),
            "runtime": self.runtime.to_dict(),
        }


def compare_batch1(
    model: nn.Module, spec: ModelSpec, engine: Path, image: np.ndarray, duration_s: float = 1.5
) -> LatencyComparison:
    model = model.eval()

    @torch.inference_mode()
    def eager() -> np.ndarray:
        x = torch.from_numpy(normalize(image[None], spec))
        return torch.softmax(model(x), dim=1).numpy()

    with Classifier.from_path(engine) as classifier:

        def ours() -> np.ndarray:
            return to_probabilities(classifier.run(preprocess(image, classifier.spec)[None]), classifier.spec)

        runtime_stats = measure("runtime-ort-cpu", ours, duration_s=duration_s)
    torch_stats = measure("torch-eager", eager, duration_s=duration_s)
    return LatencyComparison(spec.name, torch_stats, runtime_stats)
