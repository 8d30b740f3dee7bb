"""Which nodes hurt INT8 accuracy most, and leaving them in FP32 until the accuracy budget holds.

Ranking (on the calibration set, never the test split): for each quantizable node, an INT8 file with
*only that node* quantized is run against the FP32 prepared graph; the node's score is the mean
squared logit error it causes alone. ``exclude_until_budget`` then leaves the top 1, 2, 4, … nodes
out of quantization, re-judging on the test split each time, and stops at the first set that meets
the budget. It reports what was excluded and what that cost in latency (batch 1 and 64, ONNX
Runtime on this CPU). Every file runs through the comparison harness (``harness.compare``), opened as
``runtime.infer`` opens it, so the int8 CPU form runs with the session settings it carries.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization.calibrate import TensorsData

from calibration.calibration_set import CalibrationSet
from calibration.variants import TENSORRT_INT8_OPS, WRITERS, Precision, quantizable_nodes
from harness.compare import Batch, Feed, Timing, compare_results, file_runner, run_backends
from runtime.preprocess import normalize
from runtime.spec import ModelSpec

_logger = logging.getLogger(__name__)

# Latency of a candidate file: its inference alone on a ready batch, with the session setup it is deployed with.
LATENCY_TIMING = Timing(warmup_calls=10, calls=30)


def latencies_ms(path: Path, spec: ModelSpec, sample: np.ndarray) -> tuple[float, float]:
    """Median ms of one call at batch 1 and at batch 64 (real samples repeated), as ``runtime.infer`` opens it."""
    batches = [Batch(normalize(sample[:1], spec)), Batch(normalize(np.resize(sample, (64,) + sample.shape[1:]), spec))]
    runner = file_runner(path, spec=spec, feed=Feed.READY, batch_size=None)
    result = run_backends([runner], batches, LATENCY_TIMING)[runner.name]
    return result.median_ms(0), result.median_ms(1)


def rank_nodes(
    prepared: Path,
    ranges: TensorsData,
    spec: ModelSpec,
    calib: CalibrationSet,
    precision: Precision = Precision.INT8,
    limit: int = 256,
) -> list[tuple[str, float]]:
    """(node, score) for every quantizable node, worst first."""
    batch = [Batch(calib.images[:limit])]
    fp32 = Precision.FP32.value
    reference = run_backends([file_runner(prepared, fp32, spec)], batch)[fp32]
    writer = WRITERS[precision]
    scores = []
    with tempfile.TemporaryDirectory(prefix="edge-sens-") as tmp:
        for node in quantizable_nodes(prepared, TENSORRT_INT8_OPS):
            path = writer(prepared, ranges, spec, Path(tmp) / f"{len(scores)}.onnx", only=[node])
            result = run_backends([file_runner(path, node, spec)], batch)[node]
            scores.append((node, compare_results(reference, result).mean_squared_diff))
    return sorted(scores, key=lambda item: -item[1])


@dataclass
class Exclusion:
    precision: str
    excluded: list[str]
    passed: bool
    steps: list[dict]  # excluded count → accuracy drop on the way
    latency_ms: dict[str, float]  # "bs1_before", "bs1_after", "bs64_before", "bs64_after"

    def summary(self) -> str:
        lat = self.latency_ms
        verdict = "meets" if self.passed else "still misses"
        return (
            f"{self.precision}: left {len(self.excluded)} node(s) in FP32 ({', '.join(self.excluded) or 'none'}); "
            f"{verdict} the budget; latency bs1 {lat['bs1_before']:.3f} → {lat['bs1_after']:.3f} ms, "
            f"bs64 {lat['bs64_before']:.3f} → {lat['bs64_after']:.3f} ms"
        )


def exclude_until_budget(
    ranking: Sequence[tuple[str, float]],
    rewrite: Callable[[list[str]], Path],
    judge: Callable[[Path], tuple[bool, float]],
    precision: Precision,
    spec: ModelSpec,
    sample: np.ndarray,
    log: Callable[[str], None] = _logger.info,
) -> Exclusion:
    """``rewrite(excluded) → file``; ``judge(file) → (passed, drop_pp)``. Tries 1, 2, 4, … worst nodes."""
    nodes = [name for name, _ in ranking]
    steps, excluded, passed = [], [], False
    path = rewrite([])
    before = latencies_ms(path, spec, sample)
    count = 1
    while count <= len(nodes):
        excluded = nodes[:count]
        path = rewrite(excluded)
        passed, drop = judge(path)
        steps.append({"excluded": count, "drop_pp": drop, "passed": passed})
        log(
            f"  {precision.value}: {count} node(s) in FP32 → accuracy drop {drop:.2f} pp "
            f"({'within' if passed else 'over'} budget)"
        )
        if passed or count == len(nodes):
            break
        count = min(count * 2, len(nodes))
    after = latencies_ms(path, spec, sample)
    return Exclusion(
        precision.value,
        excluded,
        passed,
        steps,
        {"bs1_before": before[0], "bs1_after": after[0], "bs64_before": before[1], "bs64_after": after[1]},
    )
