"""One honest latency line: our runtime vs PyTorch eager, batch 1, same process, same inputs.

Both sides start from a decoded uint8 image and end with class probabilities: PyTorch runs the
training transform + the eager model + softmax; the runtime runs its preprocessing + ONNX
Runtime + softmax. Both run through the comparison harness (``harness.compare``), one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from benchmarks.timing import LatencyStats, stats_from_samples
from harness.compare import Batch, Feed, Timing, file_runner, run_backends, torch_runner
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
    runners = [
        file_runner(engine, "runtime-ort-cpu", feed=Feed.PER_IMAGE, probabilities=True),
        torch_runner(model, spec, "torch-eager", probabilities=True),
    ]
    timing = Timing(warmup_s=0.3, seconds=duration_s, calls=20)
    results = run_backends(runners, [Batch(image[None])], timing)
    runtime_stats, torch_stats = (stats_from_samples(r.name, r.latencies_ms[0]) for r in results.values())
    return LatencyComparison(spec.name, torch_stats, runtime_stats)
