"""Generate-then-judge: both halves stored, a rerun redoes nothing."""

from __future__ import annotations

import pytest

from esr_utils.evaluation import judged_trials
from esr_utils.generation import Sampling, Trial
from esr_utils.judging import Attempt, Verdict
from esr_utils.steering import Steering


class CountingJudge:
    """Scores by response length; remembers what it was asked (a judge at its boundary)."""

    name = "counting"

    def __init__(self):
        self.seen = []

    def judge_many(self, items):
        self.seen.extend(items)
        return [Verdict(attempts=(Attempt(i.response, float(len(i.response) % 101)),),
                        judge=self.name) for i in items]


def test_rerun_neither_regenerates_nor_rejudges(tiny_model, tiny_sae, tmp_path):
    trials = [Trial("Hi?", Steering(2, 1.0), seed=1), Trial("Hello?", seed=2)]
    judge = CountingJudge()
    kwargs = dict(judge=judge, directory=tmp_path, sae=tiny_sae,
                  sampling=Sampling(max_new_tokens=5), progress=False)
    first = judged_trials(tiny_model, trials, ["latent two", ""], **kwargs)
    assert [i.label for i in judge.seen] == ["latent two", ""]
    assert all(r["attempts"] and r["judge_error"] is None for r in first)
    again = judged_trials(tiny_model, trials, ["latent two", ""], **kwargs)
    assert len(judge.seen) == 2 and again == first
    with pytest.raises(RuntimeError, match="cache-only"):
        judged_trials(tiny_model, [Trial("New?", seed=3)], [""], compute="cache-only", **kwargs)


def test_labels_must_align_with_trials(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="1 labels for 2 trials"):
        judged_trials(tiny_model, [Trial("a?"), Trial("b?")], [""], judge=CountingJudge(),
                      directory=tmp_path)
