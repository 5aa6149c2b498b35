"""The prefill control's bookkeeping: cuts, where a restart sits, which episodes count, rates."""

from __future__ import annotations

import pytest

from esr_utils.metrics import wilson_interval
from esr_utils.prefill import (
    cut_prefix,
    cut_text,
    prefill_episodes,
    rate_rows,
    restart_position,
    sample_episodes,
)


def _record(response, attempts):
    return {"response": response, "attempts": [{"text": t, "score": s} for t, s in attempts]}


def test_cut_falls_before_a_space_and_keeps_the_words_whole():
    text = "Bread needs flour, water and yeast. Knead it well."
    assert cut_prefix(text, 20) == "Bread needs flour,"
    assert text.startswith(cut_prefix(text, 20)) and text[len("Bread needs flour,")] == " "
    assert cut_prefix("abcdefghijklmnop", 10) == "abcdefghij"  # no space: cut exactly
    assert cut_prefix(text, len(text)) is None and cut_prefix(text, len(text) - 1) is not None
    with pytest.raises(ValueError, match="at least 1 character"):
        cut_prefix(text, 0)


def test_restart_position_is_where_the_first_attempt_ends():
    response = "Cats purr loudly. Wait, that is off topic. To bake bread, mix flour."
    rec = _record(response, [("Cats purr loudly.", 5), ("To bake bread, mix flour.", 80)])
    assert restart_position(rec) == len("Cats purr loudly.")
    assert restart_position(_record(response, [(response, 40)])) is None
    assert restart_position(_record(response, [("Felines", 5), ("To bake", 9)])) == -1


def test_episodes_drop_short_answers_and_restarts_inside_the_prefix():
    late = _record("Cats purr loudly and sleep a lot. Wait, no. Bread needs flour.",
                   [("Cats purr loudly and sleep a lot.", 5), ("Bread needs flour.", 80)])
    early = _record("Cats. Wait, no. Bread needs flour, water and yeast, then heat.",
                    [("Cats.", 5), ("Bread needs flour, water and yeast, then heat.", 80)])
    plain = _record("Cats purr loudly and sleep most of the day long.", [("Cats purr", 10)])
    short = _record("Cats.", [("Cats.", 3)])
    unplaced = _record("Cats purr loudly. Bread needs flour and water.",
                       [("Felines purr", 5), ("Bread needs flour and water.", 70)])
    episodes = prefill_episodes([late, early, plain, short, unplaced], 20)
    assert episodes.records == [late, plain]
    # "early" restarted inside its prefix "Cats. Wait, no.": its correction is not new
    assert episodes.prefixes == ["Cats purr loudly and", "Cats purr loudly and"]
    assert (episodes.too_short, episodes.restarted_in_prefix, episodes.unplaced) == (1, 1, 1)


def test_cuts_by_share_and_just_before_the_models_own_restart():
    response = "Cats purr loudly. Wait, that is off topic. To bake bread, mix flour."
    rec = _record(response, [("Cats purr loudly.", 5), ("To bake bread, mix flour.", 80)])
    assert cut_text(rec, "50%") == cut_prefix(response, round(len(response) / 2))
    assert cut_text(rec, "restart") == "Cats purr loudly."
    assert cut_text(_record(response, [(response, 40)]), "restart") is None
    assert cut_text(rec, 20) == cut_prefix(response, 20)
    for bad in ("0%", "100%", "half", 2.5):
        with pytest.raises(ValueError):
            cut_text(rec, bad)
    plain = _record("Cats purr loudly and sleep most of the day long.", [("Cats purr", 10)])
    episodes = prefill_episodes([rec, plain], "restart")
    # only the answer that restarted has a restart to stop before; it is not "restarted in the
    # prefix", since the prefix ends where the restart begins
    assert episodes.records == [rec] and episodes.prefixes == ["Cats purr loudly."]
    assert (episodes.too_short, episodes.restarted_in_prefix) == (1, 0)


def test_rate_rows_count_exactly_with_wilson_intervals():
    records = [_record("a", [("a", 10), ("b", 80)]), _record("a", [("a", 50), ("b", 20)]),
               _record("a", [("a", 30)]), _record("a", [("a", 30)])]
    rows = {r["metric"]: r for r in rate_rows(records, model="m", cut=100)}
    assert (rows["self-correction"]["k"], rows["self-correction"]["n"]) == (2, 4)
    assert (rows["improved | corrected"]["k"], rows["improved | corrected"]["n"]) == (1, 2)
    assert (rows["ESR"]["k"], rows["ESR"]["n"]) == (1, 4)
    assert (rows["ESR"]["lo"], rows["ESR"]["hi"]) == wilson_interval(1, 4)
    assert rows["ESR"]["model"] == "m" and rows["ESR"]["cut"] == 100


def test_sampled_episodes_are_a_seeded_subset_in_stored_order():
    records = [{"i": i} for i in range(20)]
    a, b = sample_episodes(records, 6, seed=1), sample_episodes(records, 6, seed=1)
    assert a == b and len(a) == 6 and [r["i"] for r in a] == sorted(r["i"] for r in a)
    assert a != sample_episodes(records, 6, seed=2)
    assert sample_episodes(records, 50, seed=1) == records
    with pytest.raises(ValueError, match="N_EPISODES must be ≥ 1"):
        sample_episodes(records, 0, seed=1)


def test_the_figure_draws_rates_at_0_of_n_and_n_of_n_and_empty_cuts():
    """Wilson bounds a hair past the rate (1 - 1e-16 at k = n) once stopped chapter 3's figure."""
    import numpy as np
    import pandas as pd

    from esr_utils.figures import prefill_rates

    hi = wilson_interval(5, 5)[1]
    rows = pd.DataFrame([{"model": "m", "condition": "unsteered continuation", "cut": cut,
                          "metric": "ESR", "rate": rate, "lo": lo, "hi": top}
                         for cut, rate, lo, top in [(100, 1.0, 0.5, min(hi, 1 - 1e-16)),
                                                    ("50%", 0.0, 1e-17, 0.3),
                                                    ("restart", np.nan, np.nan, np.nan)]])
    assert len(prefill_rates(rows, metrics=("ESR",)).axes) == 2
