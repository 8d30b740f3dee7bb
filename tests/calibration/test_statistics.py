"""The gate's statistics against published values: Wilson intervals, exact McNemar, Newcombe's paired interval."""

import math

import numpy as np
import pytest

from calibration.statistics import (
    MAX_IMAGES,
    PairedTable,
    Verdict,
    about,
    agreement_verdict,
    drop_verdict,
    judge_agreement,
    judge_drop,
    mcnemar_exact,
    paired_difference_interval,
    wilson_interval,
)

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven methods",
# Statistics in Medicine 17, 857–872, Table II, method 3 (Wilson score without continuity correction).
WILSON_PUBLISHED = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
]

# Cavo et al. (2012) as worked in Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables"
# (2017), chapter 8: complete response before (rows) and after (columns) consolidation, [[59, 6], [16, 80]].
# The "variant" here is the row variable: 6 images only it gets right, 16 only the reference gets right.
CAVO = PairedTable(both_right=59, reference_only=16, variant_only=6, both_wrong=80)


@pytest.mark.parametrize(("counts", "published"), WILSON_PUBLISHED)
def test_wilson_interval_matches_newcombe_table(counts, published):
    interval = wilson_interval(*counts)
    assert (round(interval.low, 4), round(interval.high, 4)) == published


def test_exact_mcnemar_matches_textbook_and_hand_computed_values():
    assert mcnemar_exact(16, 6) == pytest.approx(0.0525, abs=5e-5)  # Fagerland et al.: exact conditional, Cavo
    assert mcnemar_exact(6, 16) == mcnemar_exact(16, 6)  # two-sided
    assert mcnemar_exact(1, 7) == pytest.approx(2 * (1 + 7) / 2**8 + 2 / 2**8)  # 2·P(X ≤ 1), X ~ Bin(8, ½)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 2**5)
    assert mcnemar_exact(0, 0) == 1.0  # no disagreement: nothing to test


def test_newcombe_paired_interval_matches_the_published_example():
    assert CAVO.difference == pytest.approx(-0.0621, abs=5e-5)
    interval = paired_difference_interval(CAVO)
    assert (round(interval.low, 4), round(interval.high, 4)) == (-0.1186, -0.0046)


def test_no_disagreement_still_leaves_an_interval_around_zero():
    """200 identical predictions do not prove the variant identical: the interval has width, shrinking with n."""
    small = paired_difference_interval(PairedTable(180, 0, 0, 20))
    large = paired_difference_interval(PairedTable(9000, 0, 0, 1000))
    assert small.low < 0 < small.high and math.isclose(-small.low, small.high)
    assert small.low < large.low < 0


def test_paired_table_from_predictions_counts_each_cell():
    labels = np.array([0, 1, 2, 3, 4, 5])
    reference = np.array([0, 1, 2, 9, 9, 9])  # right on 0, 1, 2
    variant = np.array([0, 9, 2, 3, 9, 9])  # right on 0, 2, 3
    table = PairedTable.from_predictions(labels, reference, variant)
    assert table == PairedTable(both_right=2, reference_only=1, variant_only=1, both_wrong=2)
    assert (table.images, table.reference_right, table.variant_right, table.difference) == (6, 3, 3, 0.0)


def test_drop_verdicts_say_whether_the_change_is_real():
    assert drop_verdict(PairedTable(9000, 30, 25, 945), max_drop=0.005) is Verdict.WITHIN  # ±0.2 pp on 10k
    assert drop_verdict(PairedTable(170, 10, 0, 20), max_drop=0.01) is Verdict.BEYOND  # 10:0, p = 0.002, −5 pp
    # −2 pp on 200 images (4 : 0, p = 0.125): could be chance, could be real.
    assert drop_verdict(PairedTable(176, 4, 0, 20), max_drop=0.01) is Verdict.INCONCLUSIVE
    # −0.5 pp, within the 1 pp budget as observed, but 200 images cannot show it stays within.
    assert drop_verdict(PairedTable(177, 2, 1, 20), max_drop=0.01) is Verdict.INCONCLUSIVE


def test_inconclusive_says_how_many_images_would_decide():
    table = PairedTable(177, 2, 1, 20)
    judged = judge_drop(table, agreeing=197, max_drop=0.01)
    assert judged.verdict is Verdict.INCONCLUSIVE and judged.images_to_decide is not None
    needed = judged.images_to_decide
    assert 200 < needed < MAX_IMAGES
    assert drop_verdict(table.scaled(needed), 0.01) is Verdict.WITHIN  # the same rates on that many images decide
    assert drop_verdict(table.scaled(needed // 2), 0.01) is Verdict.INCONCLUSIVE  # half as many do not (rounded
    # cells make the boundary ragged: the answer is an estimate, "≈")
    assert "n=200, b=2, c=1; ≈" in judged.describe() and judged.describe().endswith("images would decide)")
    # An observed drop exactly on the budget never decides: said, not searched for ever.
    assert judge_drop(PairedTable(178, 3, 1, 18), 197, 0.01).images_to_decide is None
    assert judge_drop(PairedTable(9000, 30, 25, 945), 9945, 0.005).images_to_decide is None  # decided already


def test_agreement_verdicts_and_the_images_an_all_agree_split_needs():
    assert agreement_verdict(10000, 10000, 0.999) is Verdict.WITHIN
    assert agreement_verdict(9970, 10000, 0.999) is Verdict.BEYOND
    judged = judge_agreement(PairedTable(180, 0, 0, 20), agreeing=200, min_agreement=0.999)
    assert judged.verdict is Verdict.INCONCLUSIVE
    # All agree on n images: the Wilson lower bound is n / (n + z²) ≥ 0.999 from n = 999·z² ≈ 3,838.
    assert 3838 <= judged.images_to_decide <= 3838 * 1.02
    assert "n=200, 0 disagree; ≈ 3,900 images would decide" in judged.describe()


def test_judgement_dict_is_plain_json_values():
    doc = judge_drop(CAVO, agreeing=139, max_drop=0.01).to_dict()
    assert doc["verdict"] == "inconclusive" and (doc["mcnemar_b"], doc["mcnemar_c"]) == (16, 6)
    assert doc["difference_ci"] == pytest.approx([-0.11862, -0.00463], abs=1e-5)
    assert all(isinstance(v, (str, int, float, list, type(None))) for v in doc.values())


def test_about_rounds_up_to_two_significant_figures():
    assert about(3838) == "≈ 3,900 images"
    assert about(370) == "≈ 370 images" and about(12) == "≈ 12 images"
    assert about(None) == f"more than {MAX_IMAGES:,} images"


def test_wilson_closed_form_equals_scipy():
    from scipy.stats import binomtest

    for trials in (1, 2, 7, 142, 306, 10_000):
        for successes in sorted({0, 1, trials // 3, trials - 1, trials}):
            ci = binomtest(successes, trials).proportion_ci(method="wilson")
            interval = wilson_interval(successes, trials)
            assert (interval.low, interval.high) == pytest.approx((ci.low, ci.high), abs=1e-12)
