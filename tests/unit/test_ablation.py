"""Zero-ablation replays: matched random sets, the ablation layer, the empty set, the rates."""

from __future__ import annotations

import numpy as np
import pytest

from esr_utils.ablation import (
    PAPER_70B_ABLATION,
    ablation_replay,
    activity_profile,
    check_ablation_layer,
    condition_rows,
    match_tolerance,
    matched_random_sets,
    printable,
    recovery_rows,
)
from esr_utils.esr_run import EsrRun, ProtocolSettings
from esr_utils.generation import Sampling, Trial
from esr_utils.judging import Attempt, Verdict
from esr_utils.protocol import judged_trials
from esr_utils.steering import Steering


def test_activity_profile_is_frequency_and_mean_when_active():
    freq = np.array([[0.5, 0.0], [0.5, 0.0]])
    mean = np.array([[1.0, 0.0], [3.0, 0.0]])
    f, m = activity_profile(freq, mean)
    assert f.tolist() == [0.5, 0.0] and m.tolist() == [4.0, 0.0]


def _profile(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(-3, 1, n), rng.lognormal(0, 0.7, n)


def test_matched_sets_match_within_the_tolerance_and_avoid_targets():
    freq, mag = _profile()
    targets = [3, 10, 50, 77]
    sets = matched_random_sets(targets, freq, mag, n_sets=6, tolerance=1.5, seed=2,
                               exclude=[5])
    assert len(sets) == 6 and all(len(s) == len(targets) for s in sets)
    for s in sets:
        assert len(set(s)) == len(s) and not set(s) & set(targets + [5])
        for k, c in zip(targets, s):
            assert 1 / 1.5 <= freq[c] / freq[k] <= 1.5
            assert 1 / 1.5 <= mag[c] / mag[k] <= 1.5
    achieved = match_tolerance(targets, sets, freq, mag)
    assert 1 <= achieved["frequency"] <= 1.5 and 1 <= achieved["magnitude"] <= 1.5
    assert sets != matched_random_sets(targets, freq, mag, n_sets=6, tolerance=1.5, seed=3)
    assert sets == matched_random_sets(targets, freq, mag, n_sets=6, tolerance=1.5, seed=2,
                                       exclude=[5])


def test_matching_fails_naming_the_fix():
    freq, mag = np.array([0.1, 0.5, 0.0]), np.array([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="MATCH_TOLERANCE"):
        matched_random_sets([0], freq, mag, n_sets=1, tolerance=1.5)
    with pytest.raises(ValueError, match="never fires"):
        matched_random_sets([2], freq, mag, n_sets=1, tolerance=10)
    with pytest.raises(ValueError, match="factor > 1"):
        matched_random_sets([0], freq, mag, n_sets=1, tolerance=1.0)


class LengthJudge:
    name = "length"

    def judge_many(self, items):
        return [Verdict(attempts=(Attempt(i.response, float(len(i.response) % 101)),),
                        judge=self.name) for i in items]


@pytest.fixture(scope="module")
def small_run(tiny_model, tiny_sae, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ch2")
    trials = [Trial("Hi?", Steering(2, 3.0), seed=1), Trial("How do I swim?", Steering(5, 3.0),
                                                                seed=2)]
    records = judged_trials(tiny_model, trials, ["two", "five"], judge=LengthJudge(),
                            directory=directory / "steered", sae=tiny_sae,
                            sampling=Sampling(max_new_tokens=6), progress=False)
    return EsrRun(model="tiny-llama", layer=2, judge="length",
                  settings=ProtocolSettings(batch_size=2), prompts=["Hi?", "How do I swim?"],
                  latents=[2, 5], labels={2: "two", 5: "five"}, funnel={}, prior=(1.0, 1.0),
                  bounds=(0.0, 9.0), thresholds={}, records={"steered": records})


def _no_timing(records):
    return [{k: v for k, v in r.items() if k != "batch_seconds"} for r in records]


def test_ablating_the_empty_set_reproduces_the_stored_trials(small_run, tiny_model, tiny_sae,
                                                            tmp_path):
    again = ablation_replay(small_run, [], model=tiny_model, sae=tiny_sae, judge=LengthJudge(),
                            directory=tmp_path, ablation_layer=2, progress=False)
    assert _no_timing(again) == _no_timing(small_run.records["steered"])


def test_the_ablation_layer_is_honoured_or_refused(small_run, tiny_model, tiny_sae, tmp_path):
    out = ablation_replay(small_run, [7, 9], model=tiny_model, sae=tiny_sae,
                          judge=LengthJudge(), directory=tmp_path, ablation_layer=2,
                          progress=False)
    assert all(r["layer"] == 2 and r["ablate"] == [7, 9] for r in out)
    assert [r["seed"] for r in out] == [r["seed"] for r in small_run.records["steered"]]
    assert check_ablation_layer(small_run, None) == 2
    with pytest.raises(NotImplementedError, match="ABLATION_LAYER=1"):
        ablation_replay(small_run, [7], model=tiny_model, sae=tiny_sae, judge=LengthJudge(),
                        directory=tmp_path, ablation_layer=1, progress=False)


def test_fresh_seeds_are_shared_by_every_condition(small_run, tiny_model, tiny_sae, tmp_path):
    kw = dict(model=tiny_model, sae=tiny_sae, judge=LengthJudge(), ablation_layer=None,
              new_seeds=11, progress=False)
    base = ablation_replay(small_run, [], directory=tmp_path / "a", **kw)
    ablated = ablation_replay(small_run, [7], directory=tmp_path / "b", **kw)
    assert [r["seed"] for r in base] == [r["seed"] for r in ablated]
    assert [r["seed"] for r in base] != [r["seed"] for r in small_run.records["steered"]]


def _record(scores):
    return {"response": "text here", "attempts": [{"score": s} for s in scores]}


def test_condition_rows_exact_arithmetic():
    baseline = [_record([10, 80])] * 2 + [_record([40, 20])] * 2 + [_record([50])] * 6
    ablated = [_record([10, 80])] + [_record([50])] * 9
    rows = {r["condition"]: r for r in condition_rows({"baseline": baseline,
                                                       "ablated": ablated}, "baseline")}
    assert rows["baseline"]["multi-attempt %"] == pytest.approx(40.0)
    assert rows["baseline"]["ESR %"] == pytest.approx(20.0)
    assert rows["ablated"]["multi-attempt Δ"] == pytest.approx(-30.0)
    assert rows["ablated"]["ESR Δ"] == pytest.approx(-10.0)
    assert rows["baseline"]["ESR Δ"] == rows["baseline"]["ESR Δ CI"] == "–"  # the reference
    lo, hi = rows["ablated"]["ESR CI"]
    assert 0 < lo < 10 < hi


def test_recovery_rows_exact_arithmetic():
    baseline = ["implicit recovery"] * 3 + ["no recovery"] * 7 + ["too short"] * 5
    ablated = ["explicit recovery"] + ["implicit recovery"] * 3 + ["no recovery"] * 6
    rows = {r["condition"]: r for r in recovery_rows({"baseline": baseline, "ablated": ablated},
                                                     "baseline")}
    assert rows["baseline"]["n classified"] == 10
    assert rows["baseline"]["explicit recovery Δ"] == "–"
    assert rows["baseline"]["implicit recovery %"] == pytest.approx(30.0)
    assert rows["ablated"]["explicit recovery Δ"] == pytest.approx(10.0)
    assert rows["ablated"]["implicit recovery Δ"] == pytest.approx(0.0)
    lo, hi = rows["ablated"]["implicit recovery Δ CI"]
    assert lo < 0 < hi


def test_the_paper_codes_70b_layers_are_stated():
    assert PAPER_70B_ABLATION["ablation_layer"] == 33 and PAPER_70B_ABLATION["sae_layer"] == 50


def test_printable_rounds_and_brackets():
    (row,) = printable([{"condition": "x", "n": 3, "ESR %": 12.345, "ESR CI": (1.0, 30.06)}])
    assert row == {"condition": "x", "n": 3, "ESR %": "12.3", "ESR CI": "[1.0, 30.1]"}
