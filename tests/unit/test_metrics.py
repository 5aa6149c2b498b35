"""ESR metrics: known answers from the paper, hand-computed cases, excluded-trial accounting."""

from __future__ import annotations

import math

import pytest

from esr_utils.metrics import (
    cross_judge_agreement,
    is_degraded,
    mean_ci,
    rate,
    rate_difference,
    ratio,
    relative_change,
    relative_reduction,
    summarize,
    trial_metrics,
    wald_interval,
    wilson_interval,
    wilson_text,
)


def rec(*scores, **extra):
    return {"response": "text", "attempts": [{"text": "t", "score": s} for s in scores], **extra}


@pytest.mark.parametrize("p, lo, hi", [(0.074, 6.7, 8.1), (0.038, 3.3, 4.3)])
def test_paper_intervals_known_answers(p, lo, hi):
    """n = 4,877 (Llama-3.3-70B): 7.4% → [6.7, 8.1] and 3.8% → [3.3, 4.3] (the paper's §3.1,
    Fig. 2)."""
    a, b = wald_interval(p, 4877)
    assert (round(100 * a, 1), round(100 * b, 1)) == (lo, hi)


def test_wald_interval_hand_computed_and_clipped():
    lo, hi = wald_interval(0.2, 5)  # 0.2 ± 1.96·sqrt(0.16/5) = 0.2 ± 0.3506
    assert lo == 0.0 and hi == pytest.approx(0.55062, abs=1e-5)
    assert wald_interval(0.0, 10) == (0.0, 0.0)
    assert all(math.isnan(x) for x in wald_interval(0.0, 0))


def test_wilson_interval_hand_computed():
    """0/10: upper bound z²/(n+z²) = 3.8416/13.8416; 50/100: centred, width 2·z·sqrt(0.25/100
    + z²/40000)/(1 + z²/100)."""
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27754, abs=1e-5)
    lo, hi = wilson_interval(50, 100)
    assert (lo + hi) / 2 == pytest.approx(0.5) and hi - lo == pytest.approx(0.19234, abs=1e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert wilson_text(3, 24) == "12.5% [4.3, 31.0] (3/24)"
    assert wilson_text(0, 0) == "– (0/0)"  # nothing to count: no share, no interval


@pytest.mark.parametrize("a, b, lo, hi", [
    ((48, 80), (56, 70), 0.0524, 0.3339),
    ((3, 10), (9, 10), 0.1705, 0.8090),
    ((0, 29), (5, 56), -0.0381, 0.1926),
    ((0, 20), (0, 10), -0.1611, 0.2775),
    ((0, 10), (0, 10), -0.2775, 0.2775),
    ((0, 20), (10, 10), 0.6791, 1.0),
])
def test_rate_difference_matches_newcombes_worked_examples(a, b, lo, hi):
    """Newcombe (1998), Stat. Med. 17:873, Table II, method 10 (hybrid score), b − a."""
    d, got_lo, got_hi = rate_difference(rate(*a), rate(*b))
    assert d == pytest.approx(b[0] / b[1] - a[0] / a[1])
    assert (round(got_lo, 4), round(got_hi, 4)) == (lo, hi)


def test_rate_difference_never_collapses_and_is_antisymmetric():
    """Where Wald gives a point (0/1 vs 1/1 → [+1, +1]; 0/n vs 0/n → [0, 0]), the interval
    keeps a width; swapping the arms negates it; an empty arm gives no interval."""
    d, lo, hi = rate_difference(rate(0, 1), rate(1, 1))
    assert d == 1.0 and lo < 0 and hi == 1.0
    d, lo, hi = rate_difference(rate(0, 60), rate(0, 60))
    assert d == 0.0 and lo < 0 < hi
    forward = rate_difference(rate(3, 40), rate(11, 50))
    backward = rate_difference(rate(11, 50), rate(3, 40))
    assert backward == pytest.approx(tuple(-x for x in (forward[0], forward[2], forward[1])))
    assert all(math.isnan(x) for x in rate_difference(rate(0, 0), rate(1, 3)))


def test_rate_rejects_impossible_counts():
    with pytest.raises(ValueError):
        rate(6, 5)


def test_mean_ci_uses_sample_sd_and_1_96():
    m = mean_ci([10, 20, 30, 40, 50])  # sd(ddof=1) = 15.811, sem = 7.071
    assert m.mean == 30 and m.sem == pytest.approx(7.0711, abs=1e-4)
    assert m.ci == pytest.approx((30 - 13.859, 30 + 13.859), abs=1e-3)
    assert math.isnan(mean_ci([]).mean) and mean_ci([None, 4]).n == 1


def test_trial_metrics_follow_the_paper_definitions():
    """Multi = >1 attempt; improved compares only first and last, strictly."""
    assert trial_metrics(rec(20, 90))["esr"] is True
    assert trial_metrics(rec(20, 5, 90))["esr"] is True  # a dip in the middle does not matter
    three = trial_metrics(rec(20, 95, 10))  # better in the middle, worse at the end
    assert three["multi_attempt"] and not three["esr"] and three["score_delta"] == -10
    tie = trial_metrics(rec(40, 40))
    assert tie["multi_attempt"] and not tie["improved"] and not tie["esr"]
    single = trial_metrics(rec(70))
    assert single["n_attempts"] == 1 and not single["esr"] and single["score_delta"] is None


def test_summarize_hand_computed_condition():
    """Five valid trials plus three excluded ones, checked by hand."""
    records = [rec(10, 90), rec(50, 20), rec(30), rec(80), rec(0, 0, 60),
               {"response": "x", "attempts": None, "judge_error": "timeout", "judge_raw": "..."},
               {"response": "x", "attempts": []},
               {"response": "x", "error": "CUDA OOM"}]
    s = summarize(records)
    assert s["n_records"] == 8 and s["n_valid"] == 5
    assert s["excluded"] == {"trial_error": 1, "judge_error": 1, "no_attempt": 1, "degraded": 0}
    assert (s["multi_attempt_rate"].k, s["multi_attempt_rate"].n) == (3, 5)
    assert (s["esr_rate"].k, s["esr_rate"].n) == (2, 5)
    assert (s["improvement_rate"].k, s["improvement_rate"].n) == (2, 3)
    assert s["mean_first_score"].mean == pytest.approx((10 + 50 + 30 + 80 + 0) / 5)
    # conditional MSI: over the three multi-attempt trials only (80, -30, 60)
    assert s["mean_score_improvement"].mean == pytest.approx(110 / 3)
    assert s["mean_score_improvement"].n == 3


def test_degraded_outputs_stay_in_unless_excluded():
    """The paper's headline numbers keep degraded outputs; the switch must count what it drops."""
    loop = rec(5, 90, response="go " + "fish " * 6 + "now")
    records = [loop, rec(50)]
    assert summarize(records)["n_valid"] == 2 and summarize(records)["n_degraded"] == 1
    dropped = summarize(records, exclude_degraded=True)
    assert dropped["n_valid"] == 1 and dropped["excluded"]["degraded"] == 1


def test_is_degraded_matches_the_upstream_rule():
    assert is_degraded("fish fish fish fish fish")
    assert not is_degraded("fish fish fish fish")  # four in a row is not enough
    assert not is_degraded("a a a a a a a")  # one-letter words do not count
    assert not is_degraded("fish fish fish fish chips fish")


def test_relative_change_reduction_and_ratio_on_paper_numbers():
    """The paper's −25% / −27% are on unrounded rates; 4.3× is condition over baseline."""
    assert relative_reduction(0.074, 0.055) == pytest.approx(0.2568, abs=1e-4)
    assert relative_change(0.074, 0.055) == pytest.approx(-0.2568, abs=1e-4)
    assert ratio(7.4, 31.7) == pytest.approx(4.284, abs=1e-3)
    assert relative_reduction(rate(38, 1000), rate(28, 1000)) == pytest.approx(10 / 38)


def test_cross_judge_agreement_hand_computed():
    a = [[10, 90], [50], [20, 10], [70], None, [30, 80]]
    b = [[15, 85], [60, 70], [20, 40], [75], [50], [90]]
    (row,) = cross_judge_agreement({"a": a, "b": b})
    # item 4 has an error in `a`, so 5 pairs; counts agree on items 0, 2, 3
    assert row["n_both"] == 5 and row["count_agreement"] == pytest.approx(3 / 5)
    assert row["multi_agreement"] == pytest.approx(3 / 5)
    # both multi on items 0 and 2: 0 agrees (up, up), 2 disagrees (down, up)
    assert row["n_both_multi"] == 2 and row["direction_agreement"] == 0.5
    assert -1 <= row["first_score_r"] <= 1


def test_cross_judge_agreement_is_one_for_identical_judges_and_checks_lengths():
    grades = [rec(10, 90), rec(40)]
    (row,) = cross_judge_agreement({"x": grades, "y": grades})
    assert row["count_agreement"] == row["multi_agreement"] == row["direction_agreement"] == 1.0
    with pytest.raises(ValueError, match="different numbers"):
        cross_judge_agreement({"x": grades, "y": grades[:1]})


def test_doctests_pass():
    """The examples in the docstrings are documentation; they must stay true."""
    import doctest

    import esr_utils.metrics

    assert doctest.testmod(esr_utils.metrics).failed == 0
