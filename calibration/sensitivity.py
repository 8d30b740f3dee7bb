"""Which nodes hurt INT8 accuracy most, and leaving them in FP32 until the accuracy budget holds.

Ranking (on the calibration set, never the test split): for each quantizable node, an INT8 file with
*only that node* quantized is run against the FP32 prepared graph; the node's score is the mean
squared logit error it causes alone. ``exclude_until_budget`` then leaves the top 1, 2, 4, … nodes
out of quantization, re-judging on the test split each time, and stops at the first set that meets
the budget. It reports what was excluded and what that cost in latency (batch 1 and 64, ONNX
Runtime on this CPU).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization.calibrate import TensorsData

from calibration.dataset import CalibrationSet
from calibration.variants import TENSORRT_INT8_OPS, WRITERS, Precision, quantizable_nodes
from runtime.preprocess import normalize
from runtime.spec import ModelSpec

_logger = logging.getLogger(__name__)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, batch: np.ndarray, input_name: str, batch_size: int = 256) -> np.ndarray:
    session = _session(path)
    return np.concatenate(
        [session.run(None, {input_name: batch[i : i + batch_size]})[0] for i in range(0, len(batch), batch_size)]
    )


def median_latency_ms(path: Path, batch: np.ndarray, input_name: str, repeats: int = 30) -> float:
    session = _session(path)
    for _ in range(10):
        session.run(None, {input_name: batch})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {input_name: batch})
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def rank_nodes(
    prepared: Path,
    ranges: TensorsData,
    spec: ModelSpec,
    calib: CalibrationSet,
    precision: Precision = Precision.INT8,
    limit: int = 256,
) -> list[tuple[str, float]]:
    """(node, score) for every quantizable node, worst first."""
    batch = normalize(calib.images[:limit], spec)
    reference = run_onnx(prepared, batch, spec.input_name)
    writer = WRITERS[precision]
    scores = []
    with tempfile.TemporaryDirectory(prefix="edge-sens-") as tmp:
        for node in quantizable_nodes(prepared, TENSORRT_INT8_OPS):
            path = writer(prepared, ranges, spec, Path(tmp) / f"{len(scores)}.onnx", only=[node])
            scores.append((node, float(np.mean((run_onnx(path, batch, spec.input_name) - reference) ** 2))))
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
    batch1, batch64 = normalize(sample[:1], spec), normalize(np.resize(sample, (64,) + sample.shape[1:]), spec)
    steps, excluded, passed = [], [], False
    path = rewrite([])
    before = (median_latency_ms(path, batch1, spec.input_name), median_latency_ms(path, batch64, spec.input_name))
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
    after = (median_latency_ms(path, batch1, spec.input_name), median_latency_ms(path, batch64, spec.input_name))
    return Exclusion(
        precision.value,
        excluded,
        passed,
        steps,
        {"bs1_before": before[0], "bs1_after": after[0], "bs64_before": before[1], "bs64_after": after[1]},
    )
