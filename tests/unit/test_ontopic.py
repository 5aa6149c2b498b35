"""The on-topic-prefix control: the forced openings differ only in the on-topic text they add."""

from __future__ import annotations

import pytest

from esr_utils.ontopic import (
    RESTART_SENTENCE,
    forced_openings,
    genuine_recovery_scores,
    stays_on_topic,
)
from esr_utils.prefill import prefill_episodes

PROMPT = "How do you bake bread?"
STEERED = {"prompt": PROMPT, "seed": 4, "response": "Volcanoes erupt when magma rises up through "
           "the crust of the earth.", "attempts": [{"text": "Volcanoes erupt.", "score": 5}]}
BASELINE = {"prompt": PROMPT, "seed": 4, "response": "Mix flour, water, salt and yeast into a "
            "dough. Let it rise for an hour."}


def test_each_condition_adds_exactly_its_on_topic_text_after_the_same_prefix():
    episodes = prefill_episodes([STEERED], 30)
    prefix = episodes.prefixes[0]
    own = "Mix flour, water, salt and yeast into a dough."
    got = {c: forced_openings(episodes, [BASELINE], c)[0]
           for c in ("restart", "own answer", "both")}
    assert got == {"restart": f"{prefix}\n\n{RESTART_SENTENCE}",
                   "own answer": f"{prefix}\n\n{own}",
                   "both": f"{prefix}\n\n{RESTART_SENTENCE} {own}"}


def test_openings_refuse_unmatched_baselines_and_unknown_conditions():
    episodes = prefill_episodes([STEERED], 30)
    with pytest.raises(ValueError, match="matched to the episodes"):
        forced_openings(episodes, [{**BASELINE, "seed": 5}], "restart")
    with pytest.raises(ValueError, match="1 baseline answers for"):
        forced_openings(prefill_episodes([STEERED, STEERED], 30), [BASELINE], "restart")
    with pytest.raises(ValueError, match="condition must be one of"):
        forced_openings(episodes, [BASELINE], "wait")


def test_genuine_recoveries_are_last_attempt_scores_of_multi_attempt_answers():
    records = [{"attempts": [{"score": 5}, {"score": 70}]}, {"attempts": [{"score": 40}]},
               {"attempts": None}, {"attempts": [{"score": 5}, {"score": 9}, {"score": 60}]}]
    assert genuine_recovery_scores(records) == [70.0, 60.0]
    assert stays_on_topic([70.0, 60.0, 49.9, None], threshold=60) == (2, 3)
