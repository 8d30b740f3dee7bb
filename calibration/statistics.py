"""How sure the gate can be: confidence intervals and a paired test for a variant against its reference.

A gate split of 200 images moves 0.5 pp per image, so a 1 pp budget sits inside the noise of the point
estimate. Every accuracy therefore carries a 95 % Wilson score interval, and a variant is compared with its
reference *on the same images*: the paired 2×2 table of right/wrong per image, an exact McNemar test on the
images where the two disagree, and Newcombe's hybrid score interval for the paired accuracy difference. The
verdict says whether a change is real:

- ``within budget``: the difference's interval lies entirely above −budget (for agreement: the agreement's
  interval lies entirely at or above the minimum);
- ``beyond budget``: the drop is real (exact test significant at 5 %) and larger than the budget as observed;
- ``inconclusive``: neither; the split is too small to tell, and ``images_to_decide`` says about how many
  images at the same rates would decide.

The binomial tests are exact binomial tails written with numpy (``binomial_cdf``; scipy's ``binomtest`` gives the
same p-values, checked in the tests), so the gate's verdicts run on a device without scipy (``edge bench all``).
The Wilson interval is the closed form (Wilson 1927; what ``binomtest(k, n).proportion_ci(method="wilson")``
returns, checked against it in the tests), so that the real-photo evaluation (``calibration.real_photos``) runs
on a device without scipy.
Newcombe's combination of two Wilson intervals has no scipy or statsmodels function, so it is written out below
with its reference and checked against the published example in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
MIN_AGREEMENT = 0.999  # the gate's budget for files that are not INT8: top-1 agreement with FP32
MAX_IMAGES = 10_000_000  # the sample-size search stops here: past it, "more than 10 million images"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def percent(self) -> str:
        return f"{100 * self.low:.1f}–{100 * self.high:.1f}"

    def points(self) -> str:
        """As a signed percentage-point range, for differences."""
        return f"{100 * self.low:+.1f} to {100 * self.high:+.1f} pp"


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval (no continuity correction) of a proportion; trials ≥ 1."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"a proportion needs 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    n, p = float(trials), successes / trials
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the b + c discordant images split b : c, tested against 1 : 1.

    With no discordant image there is nothing to test: 1.0.
    """
    if b + c == 0:
        return 1.0
    # At p = ½ the two-sided exact test (scipy's binomtest) is twice the smaller tail, capped at 1.
    return min(1.0, 2.0 * binomial_cdf(min(int(b), int(c)), int(b + c), 0.5))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), exactly (log-space sums, numpy only: no scipy on a device).

    Sums the shorter side (the lower tail, or one minus the upper tail), so a near-1 ``p`` over millions of trials
    stays cheap; scipy's ``binom.cdf`` agrees to ~1e-12 (checked in the tests where scipy is installed)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0 or p >= 1.0:
        return 1.0 if p <= 0.0 else 0.0
    upper = n - k - 1 < k + 1  # fewer terms above k than at or below it
    counts = np.arange(k + 1, n + 1) if upper else np.arange(0, k + 1)
    log_pmf = _log_binomial_pmf(counts, n, p)
    top = log_pmf.max()
    tail = float(np.exp(top) * np.exp(log_pmf - top).sum())
    return max(0.0, 1.0 - tail) if upper else min(1.0, tail)


def _log_binomial_pmf(counts: np.ndarray, n: int, p: float) -> np.ndarray:
    """log P(X = i) for consecutive ``counts``: the first binomial coefficient by lgamma, the rest by the ratio
    C(n, i) / C(n, i - 1) = (n - i + 1) / i (a cumulative sum, vectorised)."""
    first = int(counts[0])
    start = math.lgamma(n + 1) - math.lgamma(first + 1) - math.lgamma(n - first + 1)
    steps = np.log((n - counts[1:] + 1.0) / counts[1:])
    log_choose = start + np.concatenate(([0.0], np.cumsum(steps)))
    return log_choose + counts * math.log(p) + (n - counts) * math.log1p(-p)


@dataclass(frozen=True)
class PairedTable:
    """Per-image right/wrong of a reference and a variant on the same images.

    ``reference_only`` is McNemar's b (reference right, variant wrong), ``variant_only`` its c.
    """

    both_right: int
    reference_only: int
    variant_only: int
    both_wrong: int

    @classmethod
    def from_predictions(cls, labels: np.ndarray, reference: np.ndarray, variant: np.ndarray) -> PairedTable:
        ref_ok, var_ok = reference == labels, variant == labels
        return cls(
            both_right=int((ref_ok & var_ok).sum()),
            reference_only=int((ref_ok & ~var_ok).sum()),
            variant_only=int((~ref_ok & var_ok).sum()),
            both_wrong=int((~ref_ok & ~var_ok).sum()),
        )

    @property
    def images(self) -> int:
        return self.both_right + self.reference_only + self.variant_only + self.both_wrong

    @property
    def reference_right(self) -> int:
        return self.both_right + self.reference_only

    @property
    def variant_right(self) -> int:
        return self.both_right + self.variant_only

    @property
    def difference(self) -> float:
        """Variant accuracy minus reference accuracy (a fraction; negative = the variant lost accuracy)."""
        return (self.variant_only - self.reference_only) / self.images

    def scaled(self, images: int) -> PairedTable:
        """The same rates on ``images`` images (cells rounded): what a larger split would likely show."""
        factor = images / self.images
        cells = (self.both_right, self.reference_only, self.variant_only, self.both_wrong)
        return PairedTable(*(round(cell * factor) for cell in cells))


def paired_difference_interval(table: PairedTable, confidence: float = CONFIDENCE) -> Interval:
    """Interval for the paired accuracy difference (variant − reference): Newcombe's hybrid score method.

    Newcombe, R. G. (1998), "Improved confidence intervals for the difference between binomial proportions
    based on paired data", Statistics in Medicine 17, 2635–2650, method 10: the Wilson intervals of the two
    marginal accuracies combined "square and add", corrected by the (continuity-adjusted) correlation φ of the
    pairs. Unlike the conditional interval on b and c alone, it stays honest when b = c = 0: no disagreement on
    200 images does not prove the variant is identical.
    """
    n = table.images
    p_ref, p_var = table.reference_right / n, table.variant_right / n
    ref, var = (
        wilson_interval(table.reference_right, n, confidence),
        wilson_interval(table.variant_right, n, confidence),
    )
    phi = _pair_correlation(table)
    # Lower limit: the variant low and the reference high; upper limit the other way round.
    down_var, up_ref = p_var - var.low, ref.high - p_ref
    up_var, down_ref = var.high - p_var, p_ref - ref.low
    delta = p_var - p_ref
    low = delta - math.sqrt(max(0.0, down_var**2 - 2 * phi * down_var * up_ref + up_ref**2))
    high = delta + math.sqrt(max(0.0, up_var**2 - 2 * phi * up_var * down_ref + down_ref**2))
    return Interval(max(-1.0, low), min(1.0, high))


def _pair_correlation(table: PairedTable) -> float:
    """Newcombe's φ: the phi coefficient of the 2×2 table, with ad − bc shrunk by n/2 towards 0 when positive."""
    a, b, c, d = table.both_right, table.reference_only, table.variant_only, table.both_wrong
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        return 0.0
    cross = a * d - b * c
    if cross > table.images / 2:
        cross -= table.images / 2
    elif cross >= 0:
        cross = 0
    return cross / math.sqrt(margins)


class Verdict(Enum):
    WITHIN = "within budget"
    BEYOND = "beyond budget"
    INCONCLUSIVE = "inconclusive"


def drop_verdict(table: PairedTable, max_drop: float, alpha: float = ALPHA) -> Verdict:
    """Judge a variant's accuracy drop (``max_drop`` as a fraction, 0.01 = 1 pp) against its reference."""
    if paired_difference_interval(table, 1.0 - alpha).low > -max_drop:
        return Verdict.WITHIN
    real = mcnemar_exact(table.reference_only, table.variant_only) < alpha
    if real and table.difference < -max_drop - 1e-12:
        return Verdict.BEYOND
    return Verdict.INCONCLUSIVE


def agreement_verdict(agree: int, images: int, min_agreement: float, alpha: float = ALPHA) -> Verdict:
    """Judge top-1 agreement with the reference against a minimum share (0.999 = 99.9 %)."""
    if wilson_interval(agree, images, 1.0 - alpha).low >= min_agreement:
        return Verdict.WITHIN
    # one-sided exact binomial test (scipy's binomtest(..., alternative="less")): P(X ≤ agree) at min_agreement
    if agree / images < min_agreement and binomial_cdf(agree, images, min_agreement) < alpha:
        return Verdict.BEYOND
    return Verdict.INCONCLUSIVE


def images_to_decide(images: int, decides: Callable[[int], bool], limit: int = MAX_IMAGES) -> int | None:
    """About how many images, at the rates seen, would give a decided verdict; None past ``limit``.

    ``decides(m)`` re-judges the counts scaled to ``m`` images. Doubling finds a deciding size, bisection to
    within 1 % narrows it; the answer is an estimate (the rates themselves are uncertain), not a guarantee.
    """
    low, high = images, min(2 * images, limit)
    while not decides(high):
        if high >= limit:
            return None
        low, high = high, min(2 * high, limit)
    while high - low > max(1, low // 100):
        middle = (low + high) // 2
        low, high = (low, middle) if decides(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class Judgement:
    """One variant against its reference on the same images: intervals, the paired test, the verdict."""

    table: PairedTable
    agreeing: int  # images whose top-1 matches the reference's, right or wrong
    verdict: Verdict
    images_to_decide: int | None  # only for an inconclusive verdict
    by_drop: bool  # judged on the accuracy drop (else on agreement)

    @property
    def accuracy_ci(self) -> Interval:
        return wilson_interval(self.table.variant_right, self.table.images)

    @property
    def reference_ci(self) -> Interval:
        return wilson_interval(self.table.reference_right, self.table.images)

    @property
    def difference_ci(self) -> Interval:
        return paired_difference_interval(self.table)

    @property
    def agreement_ci(self) -> Interval:
        return wilson_interval(self.agreeing, self.table.images)

    @property
    def mcnemar_p(self) -> float:
        return mcnemar_exact(self.table.reference_only, self.table.variant_only)

    def describe(self) -> str:
        """The verdict; when inconclusive, with the counts behind it and about how many images would decide."""
        if self.verdict is not Verdict.INCONCLUSIVE:
            return self.verdict.value
        n, t = self.table.images, self.table
        counts = f"b={t.reference_only}, c={t.variant_only}" if self.by_drop else f"{n - self.agreeing} disagree"
        return f"inconclusive: split too small to decide (n={n}, {counts}; {about(self.images_to_decide)} would decide)"

    def to_dict(self) -> dict:
        intervals = {
            "accuracy_ci": self.accuracy_ci,
            "reference_accuracy_ci": self.reference_ci,
            "difference_ci": self.difference_ci,
            "agreement_ci": self.agreement_ci,
        }
        return {
            "verdict": self.verdict.value,
            "verdict_text": self.describe(),
            "mcnemar_b": self.table.reference_only,
            "mcnemar_c": self.table.variant_only,
            "mcnemar_p": self.mcnemar_p,
            "images_to_decide": self.images_to_decide,
            "confidence": CONFIDENCE,
            **{name: [i.low, i.high] for name, i in intervals.items()},
        }


def judge_drop(table: PairedTable, agreeing: int, max_drop: float, alpha: float = ALPHA) -> Judgement:
    """The verdict on an accuracy budget (``max_drop`` a fraction), with the images that would decide it."""
    verdict = drop_verdict(table, max_drop, alpha)
    needed = None
    if verdict is Verdict.INCONCLUSIVE:
        needed = images_to_decide(
            table.images, lambda m: drop_verdict(table.scaled(m), max_drop, alpha) is not Verdict.INCONCLUSIVE
        )
    return Judgement(table, agreeing, verdict, needed, by_drop=True)


def judge_agreement(table: PairedTable, agreeing: int, min_agreement: float, alpha: float = ALPHA) -> Judgement:
    """The verdict on an agreement budget (``min_agreement`` a fraction), with the images that would decide it."""
    images = table.images
    verdict = agreement_verdict(agreeing, images, min_agreement, alpha)

    def decides(m: int) -> bool:
        return agreement_verdict(round(agreeing * m / images), m, min_agreement, alpha) is not Verdict.INCONCLUSIVE

    needed = images_to_decide(images, decides) if verdict is Verdict.INCONCLUSIVE else None
    return Judgement(table, agreeing, verdict, needed, by_drop=False)


def about(images: int | None) -> str:
    """'≈ 2,400 images' (two significant figures), or the search limit when none was found."""
    if images is None:
        return f"more than {MAX_IMAGES:,} images"
    digits = max(0, len(str(images)) - 2)
    rounded = int(math.ceil(images / 10**digits) * 10**digits)
    return f"≈ {rounded:,} images"
