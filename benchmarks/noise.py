"""Noise, measured and said: every timing's spread, the instability rule, ratios with their round-to-round range,
and the check that a part is not slower than the whole that contains it.

``bench latency``'s rule decides instability: a coefficient of variation (std / mean) above 2.5 % (trtexec's
warning). Candidates are timed in interleaved rounds, so a ratio is taken round by round within one run and
reported as the median with the range over rounds; a noisy neighbour then shows as a wide range, not as a result.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.timing import LatencyStats, percentile, stats_from_samples

COV_WARNING = 0.025  # bench latency's rule (trtexec warns above 2.5 %)


@dataclass(frozen=True)
class Spread:
    """One timing over every call of every round: its percentiles and coefficient of variation (ms)."""

    stats: LatencyStats
    p10_ms: float
    round_medians: tuple[float, ...]

    @classmethod
    def of(cls, name: str, rounds: Sequence[Sequence[float]], batch: int = 1) -> Spread:
        samples = [s for r in rounds for s in r]
        return cls(
            stats_from_samples(name, samples, batch),
            percentile(sorted(samples), 10),
            tuple(statistics.median(r) for r in rounds if r),
        )

    @property
    def median_ms(self) -> float:
        return self.stats.median_ms

    @property
    def cov(self) -> float:
        return self.stats.cov

    @property
    def unstable(self) -> bool:
        return unstable(self.cov)

    def describe(self) -> str:
        """'1.234 (1.100–1.500)': the median with p10–p90."""
        return f"{self.median_ms:.3f} ({self.p10_ms:.3f}–{self.stats.p90_ms:.3f})"

    def to_dict(self) -> dict:
        return {
            **self.stats.to_dict(),
            "p10_ms": self.p10_ms,
            "round_medians_ms": list(self.round_medians),
            "unstable": self.unstable,
        }


def unstable(cov: float, threshold: float = COV_WARNING) -> bool:
    return cov > threshold


@dataclass(frozen=True)
class Ratio:
    """``slow / fast`` taken round by round (each round times both, interleaved): median, low, high."""

    median: float
    low: float
    high: float

    @classmethod
    def per_round(cls, numerator: Sequence[float], denominator: Sequence[float]) -> Ratio:
        values = [a / b for a, b in zip(numerator, denominator) if b > 0]
        return cls(statistics.median(values), min(values), max(values))

    def describe(self) -> str:
        return f"{self.median:.2f}× (rounds {self.low:.2f}–{self.high:.2f})"


def containment_error(part: str, part_ms: float, whole: str, whole_ms: float) -> str | None:
    """A part timed slower than the whole that contains it is a measurement error (noise, a neighbour's load),
    never an overhead: the sentence that says so, or None when the order is plausible."""
    if part_ms > whole_ms:
        return (
            f"measurement error: {part} ({part_ms:.3f} ms) timed slower than {whole} ({whole_ms:.3f} ms), which "
            "contains it; the machine was noisy: no overhead can be read from this run (rerun on a quiet machine, "
            "more rounds)"
        )
    return None
