"""Seeded, batched generation: determinism, batch independence, resume, and input checks."""

from __future__ import annotations

import pytest
import torch

from esr_utils.generation import Sampling, SeededSampler, Trial, generate_trials
from esr_utils.models import get_spec, load_model
from esr_utils.results import ResultsStore
from esr_utils.steering import Steering

SHORT = Sampling(temperature=0.6, repetition_penalty=1.1, max_new_tokens=24)


def _trials():
    return [
        Trial("Explain how to add two fractions.", Steering(), seed=11),
        Trial("How do you make a good cup of coffee?", Steering(2, 60.0), seed=12),
        Trial("Explain how to change a bike tire.", Steering(5, 120.0), seed=13),
        Trial("How do you solve quadratic equations?", Steering(), seed=14),
    ]


def test_same_seed_same_config_gives_identical_text(embedded, unit_sae):
    """Reproducibility on CPU: rerunning a config reproduces every token."""
    first = generate_trials(embedded, _trials(), sae=unit_sae, sampling=SHORT, progress=False)
    second = generate_trials(embedded, _trials(), sae=unit_sae, sampling=SHORT, progress=False)
    assert [r["response"] for r in first] == [r["response"] for r in second]
    assert all(r["n_new_tokens"] > 0 for r in first)


def test_trial_alone_equals_trial_in_batch(embedded, unit_sae):
    """A trial's text depends on its own seed, not on which trials share its batch."""
    batched = generate_trials(embedded, _trials(), sae=unit_sae, sampling=SHORT, batch_size=4,
                              progress=False)
    for trial, record in zip(_trials(), batched):
        solo = generate_trials(embedded, [trial], sae=unit_sae, sampling=SHORT, progress=False)
        assert solo[0]["response"] == record["response"], trial


def test_seed_changes_the_sample(embedded):
    """Sampling is really random: different seeds give different texts."""
    trials = [Trial("Explain how to plan a party.", seed=s) for s in range(3)]
    texts = {r["response"] for r in generate_trials(embedded, trials, sampling=SHORT,
                                                     progress=False)}
    assert len(texts) > 1


def test_sampler_draws_one_number_per_row_per_step():
    """Batch independence rests on this: row i's draws depend only on seed i."""
    scores = torch.randn(3, 50)
    together = SeededSampler([1, 2, 3], 0.7)(None, scores).argmax(-1)
    alone = SeededSampler([2], 0.7)(None, scores[1:2]).argmax(-1)
    assert together[1] == alone[0]
    greedy = SeededSampler([1, 2, 3], 0.0)(None, scores).argmax(-1)
    assert torch.equal(greedy, scores.argmax(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_picks_the_inverse_cdf_token_and_leaves_its_input_alone(dtype):
    """Each row's token is where its seeded draw falls in softmax(scores / T)'s cumulative sum,
    and the scores it was given are not changed (it works in place on its own copy)."""
    scores = torch.randn(4, 300, dtype=dtype) * 3
    before = scores.clone()
    chosen = SeededSampler([5, 6, 7, 8], 0.6)(None, scores).argmax(-1)
    assert torch.equal(scores, before)
    for row, seed in enumerate([5, 6, 7, 8]):
        draw = torch.rand((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        cdf = torch.softmax(scores[row].double() / 0.6, dim=-1).cumsum(-1)
        assert chosen[row] == torch.searchsorted(cdf, draw.reshape(1)).item()


class TestResume:
    def test_crash_midway_then_rerun_stores_each_trial_once(self, tiny_model, tiny_sae, tmp_path):
        """A crash after the first batch loses nothing and duplicates nothing."""
        trials = [Trial(f"Question number {i}?", Steering(i % 4, 1.5), seed=i) for i in range(6)]
        sampling = Sampling(max_new_tokens=6)
        store = ResultsStore(tmp_path / "run")
        calls = []

        def crash_after_first_batch(records):
            calls.append(len(records))
            if len(calls) == 1:
                raise KeyboardInterrupt("simulated crash")

        with pytest.raises(KeyboardInterrupt):
            generate_trials(tiny_model, trials, sae=tiny_sae, sampling=sampling, batch_size=2,
                            store=store, on_batch=crash_after_first_batch, progress=False)
        assert len(store) == 2
        resumed = generate_trials(tiny_model, trials, sae=tiny_sae, sampling=sampling,
                                  batch_size=2, store=ResultsStore(tmp_path / "run"),
                                  on_batch=lambda recs: calls.append(len(recs)), progress=False)
        assert calls[1:] == [2, 2]  # only the four missing trials were generated
        ids = [r["trial_id"] for r in ResultsStore(tmp_path / "run").records()]
        assert sorted(ids) == sorted({r["trial_id"] for r in resumed}) and len(ids) == 6
        fresh = generate_trials(tiny_model, trials, sae=tiny_sae, sampling=sampling,
                                batch_size=3, progress=False)
        assert [r["response"] for r in fresh] == [r["response"] for r in resumed]

    def test_torn_last_line_is_dropped_and_regenerated(self, tiny_model, tmp_path):
        trials = [Trial("Say something.", seed=s) for s in range(2)]
        sampling = Sampling(max_new_tokens=4)
        store = ResultsStore(tmp_path / "run")
        generate_trials(tiny_model, trials, sampling=sampling, store=store, progress=False)
        data = store.path.read_bytes()
        store.path.write_bytes(data[: len(data) - 20])  # the crash cut the last line short
        with pytest.warns(UserWarning, match="torn last line"):
            reopened = ResultsStore(tmp_path / "run")
        assert len(reopened) == 1
        generate_trials(tiny_model, trials, sampling=sampling, store=reopened, progress=False)
        assert len(ResultsStore(tmp_path / "run")) == 2


class TestBadInputFailsBeforeGenerating:
    def _never(self, records):
        raise AssertionError("generation started despite bad input")

    def test_unknown_model(self):
        with pytest.raises(KeyError, match="unknown model 'llama-4'; known models: smollm2"):
            get_spec("llama-4")

    def test_layer_out_of_range(self, tiny_model):
        with pytest.raises(ValueError, match="layer 9 is out of range"):
            generate_trials(tiny_model, [Trial("Hi?")], layer=9, on_batch=self._never)

    def test_latent_out_of_range(self, tiny_model, tiny_sae):
        trials = [Trial("Hi?"), Trial("Hello?", Steering(999, 1.0))]
        with pytest.raises(ValueError, match=r"\[999\] are out of range"):
            generate_trials(tiny_model, trials, sae=tiny_sae, on_batch=self._never)

    def test_sae_width_mismatch(self, embedded, tiny_sae):
        with pytest.raises(ValueError, match="does not match the model's d_model=576"):
            generate_trials(embedded, [Trial("Hi?", Steering(1, 1.0))], sae=tiny_sae,
                            on_batch=self._never)

    def test_empty_prompt_list(self, tiny_model):
        with pytest.raises(ValueError, match="empty"):
            generate_trials(tiny_model, [], on_batch=self._never)

    def test_empty_prompt(self):
        with pytest.raises(ValueError, match="non-empty prompt"):
            Trial("   ")

    def test_model_path_with_wrong_shape(self, tiny_model_dir):
        with pytest.raises(ValueError, match="wrong `path`"):
            load_model("llama-3.1-8b-instruct", device="cpu", path=tiny_model_dir)


class TestSamplingIsValidated:
    @pytest.mark.parametrize("field, value, message", [
        ("temperature", float("nan"), "temperature must be finite, got nan"),
        ("temperature", float("inf"), "temperature must be finite"),
        ("temperature", -0.1, "temperature must be ≥ 0"),
        ("temperature", "0.6", "temperature must be a number"),
        ("repetition_penalty", float("nan"), "repetition_penalty must be finite"),
        ("repetition_penalty", 0.0, "repetition_penalty must be > 0"),
        ("max_new_tokens", 0, "max_new_tokens must be an int ≥ 1"),
        ("max_new_tokens", 2.5, "max_new_tokens must be an int ≥ 1"),
        ("max_new_tokens", True, "max_new_tokens must be an int ≥ 1"),
    ])
    def test_bad_values_fail_naming_the_field(self, field, value, message):
        """A NaN temperature used to pass and produce 'ectableectable…'."""
        with pytest.raises(ValueError, match=message):
            Sampling(**{field: value})

    def test_misspelt_compute_fails_before_generating(self, tiny_model):
        with pytest.raises(ValueError, match=r"COMPUTE must be one of .*did you mean 'cache-only'"):
            generate_trials(tiny_model, [Trial("Hi?")], compute="cache_only",
                            on_batch=TestBadInputFailsBeforeGenerating()._never)


class TestStaleResultsAreNeverReused:
    """Trial keys hold the code on the generation path and the SAE's content hash."""

    TRIALS = [Trial("Tell me about rivers.", Steering(3, 8.0), seed=1),
              Trial("Tell me about rivers.", Steering(), seed=2)]
    SAMPLING = Sampling(max_new_tokens=6)

    def _other_sae(self, sae):
        import copy

        other = copy.deepcopy(sae)
        other.__dict__.pop("content_sha256", None)
        with torch.no_grad():
            other.W_dec[3] = -other.W_dec[3] * 5
        return other

    def test_same_store_with_another_sae_does_not_return_the_first_saes_texts(
            self, tiny_model, tiny_sae, tmp_path):
        store = ResultsStore(tmp_path)
        first = generate_trials(tiny_model, self.TRIALS, sae=tiny_sae, sampling=self.SAMPLING,
                                store=store, progress=False)
        other = self._other_sae(tiny_sae)
        with pytest.raises(RuntimeError, match=r"1 of 2 trials are not in .*made by other code "
                                               r"or inputs.*SAE changed"):
            generate_trials(tiny_model, self.TRIALS, sae=other, sampling=self.SAMPLING,
                            store=store, compute="cache-only", progress=False)
        second = generate_trials(tiny_model, self.TRIALS, sae=other, sampling=self.SAMPLING,
                                 store=store, progress=False)
        fresh = generate_trials(tiny_model, self.TRIALS, sae=other, sampling=self.SAMPLING,
                                progress=False)
        assert second[0]["response"] == fresh[0]["response"] != first[0]["response"]
        assert second[0]["trial_id"] != first[0]["trial_id"]
        # the unsteered trial does not read the SAE, so it is reused as it is
        assert second[1]["trial_id"] == first[1]["trial_id"]
        assert second[0]["provenance"]["sae"] == other.content_sha256 != tiny_sae.content_sha256

    def test_a_code_change_invalidates_and_cache_only_names_the_module(
            self, tiny_model, tiny_sae, tmp_path, monkeypatch):
        import esr_utils.generation as generation

        store = ResultsStore(tmp_path)
        generate_trials(tiny_model, self.TRIALS, sae=tiny_sae, sampling=self.SAMPLING,
                        store=store, progress=False)
        generate_trials(tiny_model, self.TRIALS, sae=tiny_sae, sampling=self.SAMPLING,
                        store=store, compute="cache-only", progress=False)  # all stored
        real = generation.trial_provenance

        def edited_steering(spec, sae):
            provenance = real(spec, sae)
            return {**provenance, "code": {**provenance["code"], "esr_utils.steering": "0" * 16}}

        monkeypatch.setattr(generation, "trial_provenance", edited_steering)
        with pytest.raises(RuntimeError, match=r"2 of 2 trials .*code of esr_utils\.steering "
                                               r"changed \(\w{8} -> 00000000\) \(2 trials\)"):
            generate_trials(tiny_model, self.TRIALS, sae=tiny_sae, sampling=self.SAMPLING,
                            store=store, compute="cache-only", progress=False)


def test_sampling_from_a_stored_record_reads_its_settings_and_takes_overrides():
    record = {"temperature": 0.3, "repetition_penalty": 1.2, "max_new_tokens": 40, "seed": 5}
    assert Sampling.from_record(record) == Sampling(0.3, 1.2, 40)
    assert Sampling.from_record(record, max_new_tokens=8) == Sampling(0.3, 1.2, 8)
