"""Where the milliseconds of one batch go, stage by stage, as trtexec splits them (``bench latency``'s stage table).

"trtexec says 3 ms, my Python app 12 ms" (TensorRT#4015, #3493, #4036, #1266) is answered by measuring every
stage of the app's path on the same batches:

- host: ``decode`` (image bytes → pixels), ``preprocess`` (resize, normalize → the input tensor),
  ``postprocess`` (softmax);
- the backend's own split of its call (``last_stage_ms`` with ``time_stages``):

  - TensorRT: ``stage_in`` (copy into pinned memory), ``h2d``, ``gpu_compute`` and ``d2h`` (CUDA events on
    its stream, as trtexec), ``enqueue`` (host time of ``execute_async_v3`` or the graph launch), ``sync``
    (host wait in ``cudaStreamSynchronize``), ``copy_out`` (pinned → the caller's array);
  - ONNX Runtime with IOBinding (CUDA or CPU): ``h2d``, ``run``, ``d2h`` — host clocks around synchronous
    steps, since ONNX Runtime owns its stream;
  - ONNX Runtime plain ``run``: ``run`` (its copies happen inside);

- ``trtexec_equivalent``: compute only, inputs already on the device, CUDA graphs where the backend has them,
  no transfers (``compute_only_ms``) — the figure trtexec prints as "GPU Compute Time". ``None`` where the
  backend cannot separate it (plain ``run``).

Each stage gets its median and spread (p10, p90, and the interquartile range) over the measured iterations.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from runtime.postprocess import to_probabilities
from runtime.preprocess import preprocess

HOST_BEFORE = ("decode", "preprocess")
HOST_AFTER = ("postprocess",)


@dataclass(frozen=True)
class StageTime:
    """One stage's distribution over the iterations, in ms."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    iterations: int

    @classmethod
    def of(cls, samples: list[float]) -> StageTime:
        a = np.asarray(samples, np.float64)
        p10, p25, p50, p75, p90 = np.percentile(a, [10, 25, 50, 75, 90])
        return cls(float(p50), float(p10), float(p90), float(p75 - p25), len(a))

    def describe(self) -> str:
        return f"{self.median_ms:.3f} ({self.p10_ms:.3f}–{self.p90_ms:.3f})"


def stage_table(samples: Mapping[str, list[float]]) -> dict[str, StageTime]:
    """Stage name → its distribution, in the order the stages were first seen (the pipeline's order)."""
    return {name: StageTime.of(values) for name, values in samples.items() if values}


def measure_stages(
    backend, spec, encoded: list[bytes], batch: int, duration_s: float, iterations: int | None, min_iterations: int = 10
) -> tuple[dict[str, StageTime], StageTime | None]:
    """Run decode → preprocess → backend → postprocess on ``batch`` encoded images until ``duration_s`` (at least
    ``min_iterations``, at most ``iterations``); returns (stage table, trtexec-equivalent compute or None).
    ``backend`` is an active backend whose ``time_stages`` is turned on for the measurement."""
    files = [encoded[i % len(encoded)] for i in range(batch)]
    name = spec.input_name
    had = getattr(backend, "time_stages", False)
    backend.time_stages = True
    samples: dict[str, list[float]] = {}
    clock, count = time.perf_counter, 0
    end = clock() + max(duration_s, 0.05)
    try:
        while (clock() < end or count < min_iterations) and (iterations is None or count < iterations):
            t0 = clock()
            images = [Image.open(io.BytesIO(b)) for b in files]
            for image in images:
                image.load()
            t1 = clock()
            ready = np.stack([preprocess(image, spec) for image in images])
            t2 = clock()
            outputs = backend.infer({name: ready})
            t3 = clock()
            to_probabilities(outputs[spec.output_name], spec)
            t4 = clock()
            row = {"decode": t1 - t0, "preprocess": t2 - t1}
            row = {k: 1e3 * v for k, v in row.items()}
            row.update({f"backend.{k}": v for k, v in getattr(backend, "last_stage_ms", {}).items()})
            row["backend"] = 1e3 * (t3 - t2)
            row["postprocess"] = 1e3 * (t4 - t3)
            row["total"] = 1e3 * (t4 - t0)
            for key, value in row.items():
                samples.setdefault(key, []).append(value)
            count += 1
    finally:
        backend.time_stages = had
    return stage_table(samples), trtexec_equivalent(backend, {name: ready}, duration_s, min_iterations)


def trtexec_equivalent(
    backend, feed: Mapping[str, np.ndarray], duration_s: float, min_iterations: int = 10
) -> StageTime | None:
    """Compute only, inputs on the device, graphs where the backend has them (``compute_only_ms``); None where the
    backend cannot separate compute from its copies."""
    compute: Callable | None = getattr(backend, "compute_only_ms", None)
    first = compute(feed) if compute is not None else None
    if first is None:
        return None
    samples, end = [first], time.perf_counter() + max(duration_s, 0.0)
    while time.perf_counter() < end or len(samples) < min_iterations:
        samples.append(compute(feed))
    return StageTime.of(samples)


def markdown_table(batch: int, table: Mapping[str, StageTime], equivalent: StageTime | None) -> list[str]:
    """``| stage | median ms (p10–p90) | IQR ms | share of total |`` rows for one batch size."""
    total = table["total"].median_ms if "total" in table else 0.0
    lines = [f"\nbatch {batch}: stage | median ms (p10–p90) | IQR ms | share of total", "---|---|---|---"]
    for name, stage in table.items():
        share = f"{stage.median_ms / total:.0%}" if total and name != "total" else ""
        lines.append(f"{name} | {stage.describe()} | {stage.iqr_ms:.3f} | {share}")
    if equivalent is not None:
        ratio = f"; the app's total is {total / equivalent.median_ms:.1f}×" if equivalent.median_ms else ""
        lines.append(
            f"trtexec-equivalent (compute only, no copies) | {equivalent.describe()} | "
            f"{equivalent.iqr_ms:.3f} | {ratio.lstrip('; ')}"
        )
    return lines


def to_dict(table: Mapping[str, StageTime], equivalent: StageTime | None) -> dict:
    return {
        "stages": {name: asdict(stage) for name, stage in table.items()},
        "trtexec_equivalent": asdict(equivalent) if equivalent is not None else None,
    }


def stage_table_of(data: Mapping) -> dict[str, StageTime]:
    """``to_dict``'s stages back as StageTime (for reports read from JSON)."""
    return {name: StageTime(**values) for name, values in data["stages"].items()}


def equivalent_of(data: Mapping) -> StageTime | None:
    value = data.get("trtexec_equivalent")
    return StageTime(**value) if value else None
