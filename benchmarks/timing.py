"""Latency measurement shared by the benchmarks: warm-up, then timed iterations, robust statistics.

Numbers are only compared as ratios taken in the same run on the same machine; the
environment goes with every result (``environment()``).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable


@dataclass(frozen=True)
class LatencyStats:
    name: str
    batch: int
    iterations: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def measure(name: str, fn: Callable[[], object], batch: int = 1, warmup_s: float = 0.3,
            duration_s: float = 1.5, min_iterations: int = 20) -> LatencyStats:
    """Call ``fn`` repeatedly: ``warmup_s`` untimed, then at least ``duration_s`` of timed calls."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        fn()
    samples: list[float] = []
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end or len(samples) < min_iterations:
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    ordered = sorted(samples)
    return LatencyStats(
        name=name, batch=batch, iterations=len(samples),
        median_ms=statistics.median(ordered), mean_ms=statistics.fmean(ordered),
        p90_ms=ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        min_ms=ordered[0], max_ms=ordered[-1],
    )


def environment() -> dict:
    """What ran the numbers: CPU model, core count, Python and library versions."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for module in ("numpy", "onnxruntime", "torch", "PIL"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}
