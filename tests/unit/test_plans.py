"""Conditions planned, then generated together: same records as one by one, own folders."""

from __future__ import annotations

import json

import pytest
from judge_doubles import CountingJudge

from esr_utils import plans as plans_module
from esr_utils.generation import Sampling, Trial
from esr_utils.plans import PlannedTrials, judged_plans
from esr_utils.steering import Steering

SHORT = Sampling(max_new_tokens=5)


def _conditions(root, sampling=SHORT):
    a = PlannedTrials([Trial("Hi?", Steering(2, 1.0), seed=1), Trial("Why?", seed=2)],
                      ["two", ""], root / "a", sampling)
    b = PlannedTrials([Trial("How?", Steering(5, 2.0, ablate=(7,)), seed=3)], ["five"],
                      root / "b", sampling)
    return [a, b]


def _stored_ids(folder):
    return [json.loads(line)["trial_id"] for line in (folder / "trials.jsonl").open()]


def _text(records):
    return [{k: v for k, v in r.items() if k != "batch_seconds"} for r in records]


@pytest.fixture
def counted_calls(monkeypatch):
    calls = []
    real = plans_module.generate_trials

    def counting(model, trials, **kwargs):
        calls.append(len(trials))
        return real(model, trials, **kwargs)

    monkeypatch.setattr(plans_module, "generate_trials", counting)
    return calls


def test_plans_together_give_each_plan_what_it_gets_alone(tiny_model, tiny_sae, tmp_path,
                                                          counted_calls):
    kw = dict(sae=tiny_sae, progress=False)
    alone = [judged_plans(tiny_model, [p], judge=CountingJudge(), **kw)[0]
             for p in _conditions(tmp_path / "alone")]
    assert counted_calls == [2, 1]
    together = judged_plans(tiny_model, _conditions(tmp_path / "together"),
                            judge=CountingJudge(), **kw)
    assert counted_calls[2:] == [3]  # one call for both plans
    assert [_text(r) for r in together] == [_text(r) for r in alone]
    # each folder holds its own plan's trials and verdicts, nothing of the other's
    for plan, records in zip(_conditions(tmp_path / "together"), together):
        assert _stored_ids(plan.directory) == [r["trial_id"] for r in records]
        assert (plan.directory / "verdicts.jsonl").read_text().count("\n") == len(records)


def test_a_rerun_of_plans_neither_regenerates_nor_rejudges(tiny_model, tiny_sae, tmp_path,
                                                           counted_calls):
    judge = CountingJudge()
    first = judged_plans(tiny_model, _conditions(tmp_path), judge=judge, sae=tiny_sae,
                         progress=False)
    again = judged_plans(tiny_model, _conditions(tmp_path), judge=judge, sae=tiny_sae,
                         compute="cache-only", progress=False)
    assert again == first and len(judge.seen) == 3


def test_plans_with_other_sampling_are_generated_apart(tiny_model, tiny_sae, tmp_path,
                                                       counted_calls):
    a, b = _conditions(tmp_path / "x")
    c = _conditions(tmp_path / "y", Sampling(max_new_tokens=3))[1]
    out = judged_plans(tiny_model, [a, PlannedTrials([], [], tmp_path / "empty"), b, c],
                       judge=CountingJudge(), sae=tiny_sae, progress=False)
    assert sorted(counted_calls) == [1, 3] and [len(r) for r in out] == [2, 0, 1, 1]
    assert all(r["max_new_tokens"] == 3 for r in out[3])


def test_plans_steered_for_their_first_tokens_only_are_generated_apart(tiny_model, tiny_sae,
                                                                       tmp_path, counted_calls):
    # their batches run in rounds that read the context again; other plans must not share them
    a, b = _conditions(tmp_path)
    first_k = PlannedTrials([Trial("Hi?", Steering(2, 1.0, steer_tokens=2), seed=1)], ["two"],
                            tmp_path / "k", SHORT)
    judged_plans(tiny_model, [a, first_k, b], judge=CountingJudge(), sae=tiny_sae,
                 progress=False)
    assert sorted(counted_calls) == [1, 3]


def test_a_trial_shared_by_two_plans_is_stored_in_both_folders(tiny_model, tiny_sae, tmp_path,
                                                               counted_calls):
    trial = Trial("Hi?", Steering(2, 1.0), seed=1)
    one = PlannedTrials([trial], ["two"], tmp_path / "one", SHORT)
    judged_plans(tiny_model, [one], judge=CountingJudge(), sae=tiny_sae, progress=False)
    two = PlannedTrials([trial, Trial("Why?", seed=2)], ["two", ""], tmp_path / "two", SHORT)
    out = judged_plans(tiny_model, [one, two], judge=CountingJudge(), sae=tiny_sae,
                       progress=False)
    assert out[0][0]["response"] == out[1][0]["response"]
    assert _stored_ids(tmp_path / "one") == [out[0][0]["trial_id"]]  # not written twice
    assert sorted(_stored_ids(tmp_path / "two")) == sorted(r["trial_id"] for r in out[1])


def test_a_plan_checks_its_labels():
    with pytest.raises(ValueError, match="1 labels for 2 trials"):
        PlannedTrials([Trial("a?"), Trial("b?")], [""], "x")
