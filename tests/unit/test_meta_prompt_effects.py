"""The paper's reading of meta-prompting, tested on hand-made judged records."""

from __future__ import annotations

import math

import pytest

from esr_utils.meta_prompt_effects import (
    doubling_power,
    mcnemar_p,
    mean_difference,
    most_effective,
    paired_counts,
    reading_test,
    table_rows,
)
from esr_utils.metrics import Mean


def trials(scores_list, start=0):
    """Judged records from score lists, one trial (latent 0, seed i) each."""
    return [{"latent_id": 0, "seed": start + i, "response": "x",
             "attempts": [{"score": s} for s in scores]} for i, scores in enumerate(scores_list)]


SINGLE, IMPROVED, WORSE = [20], [10, 80], [60, 10]


def test_more_attempts_equally_successful_supports_the_reading():
    base = trials([IMPROVED, WORSE] * 5 + [SINGLE] * 90)
    meta = trials([IMPROVED, WORSE] * 20 + [SINGLE] * 60)
    out = reading_test(base, meta)
    d, lo, hi = out["multi_attempt_diff"]
    assert d == pytest.approx(0.30) and lo > 0
    assert out["improvement_diff"][0] == pytest.approx(0.0)
    assert out["propensity"] == "raised" and out["success"] == "no clear change"
    assert out["verdict"].startswith("supported")
    assert out["discordant"] == (0, 30) and out["mcnemar_p"] < 1e-6


def test_more_successful_attempts_contradict_it():
    base = trials([IMPROVED] * 5 + [WORSE] * 45 + [SINGLE] * 50)
    meta = trials([IMPROVED] * 45 + [WORSE] * 5 + [SINGLE] * 50)
    out = reading_test(base, meta)
    assert out["propensity"] == "no clear change" and out["success"] == "raised"
    assert out["verdict"] == "contradicted: the success of attempts raised"


def test_fewer_attempts_and_no_attempts_are_named():
    base = trials([IMPROVED] * 30 + [SINGLE] * 70)
    fewer = reading_test(base, trials([IMPROVED] * 2 + [SINGLE] * 98))
    assert fewer["verdict"] == "contradicted: the attempt rate fell"
    none = trials([SINGLE] * 100)
    flat = reading_test(none, none)
    assert flat["verdict"].startswith("inconclusive") and flat["success"] == "untestable"
    assert flat["mcnemar_p"] == 1.0
    rose = reading_test(none, trials([IMPROVED] * 30 + [SINGLE] * 70))
    assert rose["verdict"].startswith("partly")


def test_pairs_must_be_the_same_trials():
    with pytest.raises(ValueError, match="same run"):
        paired_counts(trials([SINGLE]), trials([SINGLE] * 2))
    with pytest.raises(ValueError, match="same trials"):
        paired_counts(trials([SINGLE]), trials([SINGLE], start=5))
    excluded = [{"latent_id": 0, "seed": 0, "response": "x", "attempts": None,
                 "judge_error": "timeout"}]
    assert paired_counts(excluded, trials([IMPROVED])) == (0, 0)


def test_exact_arithmetic():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)
    d, lo, hi = mean_difference(Mean(10.0, 3.0, 5), Mean(4.0, 4.0, 5))
    assert d == -6.0 and hi - d == pytest.approx(1.96 * 5.0)
    assert all(math.isnan(x) for x in mean_difference(Mean(1.0, math.nan, 1), Mean(2, 1, 4)))


def test_doubling_power():
    small = doubling_power(0.05, 60, 60)
    assert not small["detectable"] and small["n_needed"] > 400
    big = doubling_power(0.25, 60, 60)
    assert big["detectable"] and big["n_needed"] <= 60
    assert doubling_power(0.0, 60, 60)["n_needed"] is None


def test_most_effective_and_table():
    conditions = {"baseline": trials([SINGLE] * 10),
                  "stay_on_topic": trials([IMPROVED] * 2 + [SINGLE] * 8),
                  "self_monitor": trials([WORSE] * 2 + [SINGLE] * 8)}
    # tie on the multi-attempt rate: the ESR rate decides
    assert most_effective(conditions) == "stay_on_topic"
    with pytest.raises(ValueError, match="no meta-prompt variant"):
        most_effective({"baseline": conditions["baseline"]})
    rows = table_rows("m", conditions)
    assert [r["condition"] for r in rows] == ["baseline", "stay_on_topic", "self_monitor"]
    assert rows[0]["multi-attempt"].startswith("0.0%")
    assert rows[0]["conditional mean score improvement"] == "–"


def test_figures_draw_rates_as_percent_and_survive_empty_arms():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from esr_utils.figures import meta_prompt_across_models, meta_prompt_variants

    results = {"a": {"baseline": trials([SINGLE] * 10),
                     "self_monitor": trials([IMPROVED] * 5 + [SINGLE] * 5)},
               "b": {"baseline": trials([SINGLE] * 4), "self_monitor": trials([SINGLE] * 4)}}
    fig = meta_prompt_across_models(results)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[1].patches)
    assert heights == [0.0, 0.0, 0.0, 50.0]  # multi-attempt %: a's variant is 5 of 10
    fig = meta_prompt_variants(results)
    assert len(fig.axes) == 8
    plt.close("all")
    with pytest.raises(ValueError, match="no model has the variant"):
        meta_prompt_across_models({"a": {"baseline": trials([SINGLE])}})
