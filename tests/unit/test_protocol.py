"""The protocol as package code: generate-then-judge, a stored run, its replay."""

from __future__ import annotations

import pytest
from judge_doubles import CountingJudge

from esr_utils.esr_run import EsrRun, ProtocolSettings
from esr_utils.generation import Sampling, Trial
from esr_utils.judging import Verdict
from esr_utils.protocol import calibrate, judged_trials, replay, run_protocol, sweep_levels
from esr_utils.steering import Steering


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


@pytest.fixture(scope="module")
def silent_sae():
    """A tiny SAE none of whose latents fire on the prompts, so every candidate is relevant."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(5)
    sae = StandardSAE(StandardSAEConfig(d_in=64, d_sae=32, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_dec.normal_(0, 1.0)
        sae.W_enc.normal_(0, 0.01)
        sae.b_enc.fill_(-1e4)
    return sae


@pytest.fixture(scope="module")
def stored_run(tiny_model, silent_sae, tmp_path_factory):
    settings = ProtocolSettings(n_latents=2, candidate_multiplier=2, concreteness="none",
                                calibration_steps=2, n_prompts_per_latent=2, sweep_levels=2,
                                sweep_prompts_per_latent=1, max_new_tokens=6,
                                calibration_max_new_tokens=4, verification_samples=1,
                                batch_size=8, seed=3)
    directory = tmp_path_factory.mktemp("run")
    run = run_protocol(tiny_model, silent_sae, CountingJudge(), ["Hi?", "Hello there?", "Why?"],
                       settings, directory, label=lambda k: f"latent {k}")
    return run, directory


def _without_timing(records):
    return [{k: v for k, v in r.items() if k != "batch_seconds"} for r in records]


def test_a_stored_run_loads_back_exactly_without_a_model(stored_run):
    run, directory = stored_run
    loaded = EsrRun.load(directory)
    assert loaded.to_dict() == run.to_dict()
    assert loaded.records == run.records
    assert set(loaded.records) == {"steered", "baseline", "sweep"}
    assert len(loaded.records["steered"]) == 4 and len(loaded.records["sweep"]) == 4
    assert all(r["latent_id"] is None for r in loaded.records["baseline"])
    assert [r["seed"] for r in loaded.records["baseline"]] == \
        [r["seed"] for r in loaded.records["steered"]]


def test_a_replay_that_changes_nothing_reproduces_the_stored_trials(stored_run, tiny_model,
                                                                    silent_sae, tmp_path):
    run, directory = stored_run
    loaded = EsrRun.load(directory)
    again = replay(loaded, model=tiny_model, sae=silent_sae, judge=CountingJudge(),
                   directory=tmp_path / "replay", progress=False)
    assert _without_timing(again) == _without_timing(loaded.records["steered"])


def test_a_replay_differs_only_in_what_it_changes(stored_run, tiny_model, silent_sae, tmp_path):
    run, _ = stored_run
    other = run.latents[0] + 1  # an odd id: not a steered latent
    ablated = replay(run, model=tiny_model, sae=silent_sae, judge=CountingJudge(),
                     directory=tmp_path / "ablate", ablate=[other], progress=False)
    meta = replay(run, model=tiny_model, sae=silent_sae, judge=CountingJudge(),
                  directory=tmp_path / "meta", meta_prompt="Ignore [latent label].",
                  new_seeds=7, progress=False)
    for old, a, m in zip(run.records["steered"], ablated, meta):
        assert a["ablate"] == [other]
        assert (a["prompt"], a["seed"], a["boost"]) == (old["prompt"], old["seed"], old["boost"])
        assert m["prompt"] == f"{old['prompt']} Ignore {old['label']}."
        assert m["seed"] != old["seed"] and m["boost"] == old["boost"]


def test_calibration_regenerates_failed_verdicts_and_counts_them(tiny_model, silent_sae,
                                                                 tmp_path):
    """A failed or empty verdict is not a score of 0: the sample is generated again."""
    class FlakyJudge(CountingJudge):
        def judge_many(self, items):
            out = super().judge_many(items)
            return [Verdict(attempts=(), judge=self.name) if len(self.seen) - len(items) + i
                    < 3 else v for i, v in enumerate(out)]

    settings = ProtocolSettings(n_latents=2, calibration_steps=1, calibration_samples=2,
                                calibration_max_new_tokens=4, seed=1)
    estimates, prior, bounds, counts = calibrate(tiny_model, silent_sae, FlakyJudge(), ["Hi?"],
                                                 [0, 2], str, settings, tmp_path)
    assert counts == {"samples": 4, "regenerated": 3, "unscored": 0, "verification": 0}
    assert bounds[0] == 0 and prior[0] > 0


def test_sweep_levels_use_the_population_std():
    levels, mean, std = sweep_levels([2.0, 4.0, 6.0], 3)
    assert (mean, std) == (4.0, pytest.approx((8 / 3) ** 0.5))
    assert levels[0] == 0.0 and levels[-1] == round(4 + 3 * (8 / 3) ** 0.5, 2)
    levels, _, std = sweep_levels([3.0, 3.0], 3)  # all equal: σ taken as mean / 3
    assert std == 1.0 and levels == [0.0, 3.0, 6.0]


def test_settings_reject_bad_values_naming_the_parameter():
    with pytest.raises(ValueError, match="RELEVANCE"):
        ProtocolSettings(relevance="top")
    with pytest.raises(ValueError, match="N_LATENTS"):
        ProtocolSettings(n_latents=0)


def test_verification_samples_are_fresh_and_counted(stored_run):
    """The per-latent check pools verification samples with the ESR run: none of their seeds
    may come from the search."""
    run, directory = stored_run
    assert run.calibration_counts["verification"] == 2
    assert all(len(run.thresholds[k].verification) == 1 for k in run.latents)
    from esr_utils.esr_run import first_scores_by_latent

    achieved = first_scores_by_latent(run)
    assert all(m.n == 3 for m in achieved.values())  # 1 verification + 2 ESR-run trials each


def test_given_latents_skip_selection_and_are_calibrated_as_given(stored_run, tiny_model,
                                                                   silent_sae, tmp_path):
    """Chapter 6 compares models on the base model's latents: no selection, same order."""
    run, _ = stored_run
    given = list(reversed(run.latents))
    other = run_protocol(tiny_model, silent_sae, CountingJudge(), run.prompts, run.settings,
                         tmp_path / "given", label=lambda k: f"latent {k}", sweep=False,
                         latents=given)
    assert other.latents == given and other.funnel == {"given": len(given)}
    assert set(other.thresholds) == set(given)
    assert [r["latent_id"] for r in other.records["steered"]][::2] == given
    assert "sweep" not in other.records


def test_later_chapters_find_chapter_2s_run_by_profile_and_model(stored_run, tmp_path,
                                                                  monkeypatch):
    import shutil

    from esr_utils import esr_run
    from esr_utils.config import RunConfig

    run, directory = stored_run
    monkeypatch.setattr(esr_run, "RESULTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="--profile smoke --only 02_esr_across_models"):
        esr_run.chapter_run("smoke", "tiny")
    key = RunConfig.for_notebook("02_esr_across_models", "smoke").key()
    shutil.copytree(directory, tmp_path / "smoke" / "02_esr_across_models" / key / "tiny")
    assert esr_run.chapter_run("smoke", "tiny").records == run.records
    # another profile's settings give another key, so its run is not picked up by mistake
    with pytest.raises(FileNotFoundError, match="'cpu' profile"):
        esr_run.chapter_run("cpu", "tiny")



def test_a_replay_with_per_trial_prefixes_keeps_the_latent_and_forces_each_opening(
        stored_run, tiny_model, silent_sae, tmp_path):
    """The prefill control: each stored response's own opening, continued at boost 0."""
    run, _ = stored_run
    stored = run.records["steered"]
    prefixes = [r["response"][:8] or "Well" for r in stored]
    judge = CountingJudge()
    again = replay(run, model=tiny_model, sae=silent_sae, judge=judge, boost_scale=0.0,
                   directory=tmp_path / "prefill", assistant_prefix=prefixes, progress=False)
    for old, new, prefix in zip(stored, again, prefixes):
        assert (new["latent_id"], new["boost"], new["seed"]) == (old["latent_id"], 0.0,
                                                                 old["seed"])
        assert new["assistant_prefix"] == prefix
        assert new["response"] == prefix + new["continuation"]
    assert [i.response for i in judge.seen] == [r["response"] for r in again]
    with pytest.raises(ValueError, match="1 assistant prefixes for the 4 stored 'steered'"):
        replay(run, model=tiny_model, sae=silent_sae, judge=judge, directory=tmp_path / "x",
               assistant_prefix=["A"], progress=False)


def test_prefill_conditions_differ_only_in_the_boost(stored_run, tiny_model, silent_sae,
                                                     tmp_path):
    from esr_utils.prefill import prefill_condition, prefill_episodes

    run, _ = stored_run
    episodes = prefill_episodes(run.records["steered"], 3)
    kwargs = dict(model=tiny_model, sae=silent_sae, judge=CountingJudge(), max_new_tokens=4,
                  progress=False)
    off = prefill_condition(run, episodes, steered=False, directory=tmp_path / "off", **kwargs)
    on = prefill_condition(run, episodes, steered=True, directory=tmp_path / "on", **kwargs)
    assert len(off) == len(on) == episodes.n > 0
    for old, a, b, prefix in zip(episodes.records, off, on, episodes.prefixes):
        assert (a["boost"], b["boost"]) == (0.0, old["boost"])
        assert a["latent_id"] == b["latent_id"] == old["latent_id"]
        assert a["assistant_prefix"] == b["assistant_prefix"] == prefix
        assert (a["seed"], a["prompt"], a["max_new_tokens"]) == (b["seed"], b["prompt"], 4)
