"""Packing trials into batches: refilling finished rows never changes a trial's tokens, the
sampler resumes exactly, and the automatic batch size follows free memory."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from esr_utils import batching
from esr_utils.generation import Sampling, SeededSampler, Trial, generate_trials
from esr_utils.steering import Steering

# short questions end early, open ones run to the limit: a batch of both has rows to refill
PROMPTS = ["Answer with one word: is fire hot?", "Explain how to bake bread, step by step.",
           "Say hello.", "Describe the history of Rome in detail.",
           "Answer yes or no: is water wet?", "Write a long story about a dragon."]
SAMPLING = Sampling(temperature=0.6, repetition_penalty=1.1, max_new_tokens=24)


def _trials():
    return [Trial(p, Steering(), seed=100 + i) for i, p in enumerate(PROMPTS)]


def test_refilled_batches_give_the_same_tokens_as_whole_batches(embedded, monkeypatch):
    """Rows paused mid-answer and resumed beside new trials end exactly as if never paused."""
    whole = generate_trials(embedded, _trials(), sampling=SAMPLING, batch_size=3, progress=False)
    assert any(r["hit_eos"] for r in whole) and not all(r["hit_eos"] for r in whole)
    resumed_at = []
    original = batching.generate_rows

    def spy(model, rows, seeds, steps_done, *args, **kwargs):
        resumed_at.extend(k for k in steps_done if k)
        return original(model, rows, seeds, steps_done, *args, **kwargs)

    monkeypatch.setattr(batching, "generate_rows", spy)
    refilled = generate_trials(embedded, _trials(), sampling=SAMPLING, batch_size=3,
                               refill_fraction=0.34, progress=False)
    assert resumed_at, "no row was paused and resumed: the test exercises nothing"
    assert [r["response"] for r in refilled] == [r["response"] for r in whole]
    assert [r["n_new_tokens"] for r in refilled] == [r["n_new_tokens"] for r in whole]


def test_a_resumed_sampler_draws_what_the_uninterrupted_one_draws():
    scores = torch.randn(5, 2, 40)
    straight = SeededSampler([3, 4], 0.8)
    picks = [straight(None, s).argmax(-1) for s in scores]
    resumed = SeededSampler([3, 4], 0.8, skip=[3, 3])
    assert torch.equal(resumed(None, scores[3]).argmax(-1), picks[3])
    with pytest.raises(ValueError, match="one count"):
        SeededSampler([3, 4], 0.8, skip=[1])


def test_a_row_stops_at_any_end_token_and_at_its_limit():
    row = batching._Row("k", None, [1, 2])
    row.take([5, 6], frozenset({9, 107}), limit=10)
    assert row.tokens == [5, 6] and not row.done
    row.take([7, 107, 0, 0], frozenset({9, 107}), limit=10)
    assert row.tokens == [5, 6, 7, 107] and row.done
    long = batching._Row("k", None, [1])
    long.take(list(range(20, 35)), frozenset({9}), limit=12)
    assert len(long.tokens) == 12 and long.done


def test_stop_ids_join_the_tokenizer_and_the_generation_config():
    model = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=1),
                            hf=SimpleNamespace(generation_config=SimpleNamespace(
                                eos_token_id=[1, 107])))
    assert batching.stop_ids(model) == {1, 107}


def _fake(device="cuda:0", remote=False, dtype=torch.bfloat16):
    config = SimpleNamespace(num_attention_heads=8, num_key_value_heads=4, head_dim=128,
                             hidden_size=1024, num_hidden_layers=16, intermediate_size=4096,
                             vocab_size=32000)
    return SimpleNamespace(remote=remote, device=device, spec=SimpleNamespace(name="fake"),
                           hf=SimpleNamespace(config=config, dtype=dtype))


def test_auto_batch_size_follows_free_memory():
    per_row = batching.bytes_per_row(_fake().hf.config, torch.bfloat16, 600)
    # KV cache: 2 × 16 layers × 4 heads × 128 dims × 2 bytes per token
    assert per_row > 2 * 16 * 4 * 128 * 2 * 600
    size = batching.auto_batch_size(_fake(), prompt_tokens=88, max_new_tokens=512,
                                    free_bytes=per_row * 40)
    assert size == 32  # 80% of room for 40 rows
    assert batching.auto_batch_size(_fake(), prompt_tokens=88, max_new_tokens=512,
                                    free_bytes=10**15) == batching.MAX_AUTO_BATCH_SIZE
    with pytest.raises(RuntimeError, match="lower MAX_NEW_TOKENS"):
        batching.auto_batch_size(_fake(), prompt_tokens=88, max_new_tokens=512,
                                 free_bytes=per_row // 2)


def test_auto_batch_size_off_gpu_is_fixed():
    assert batching.auto_batch_size(_fake(remote=True), prompt_tokens=9,
                                    max_new_tokens=9) == batching.REMOTE_BATCH_SIZE
    assert batching.auto_batch_size(_fake("cpu"), prompt_tokens=9,
                                    max_new_tokens=9) == batching.CPU_BATCH_SIZE


@pytest.mark.parametrize("bad", [0, -2, True, "big", 2.5])
def test_a_bad_batch_size_fails_naming_auto(bad):
    with pytest.raises(ValueError, match="'auto'"):
        batching.resolve_batching(bad, None, _fake("cpu"), [], SAMPLING)


def test_refilling_is_refused_on_ndif():
    with pytest.raises(ValueError, match="NDIF"):
        next(batching.run_batches(_fake(remote=True), [("k", None)], sae=None, layer=0,
                                  sampling=SAMPLING, batch_size=2, refill_fraction=0.5))


def test_auto_sizes_by_free_gpu_memory_and_refills_only_there(embedded, monkeypatch):
    gpu = _fake()
    gpu.tokenizer = embedded.tokenizer
    longest = max(len(batching.turn_ids(embedded.tokenizer, p)) for p in PROMPTS)
    per_row = batching.bytes_per_row(gpu.hf.config, torch.bfloat16,
                                     longest + SAMPLING.max_new_tokens)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (per_row * 10 + 9, 0))
    size, refill = batching.resolve_batching("auto", None, gpu, _trials(), SAMPLING)
    assert size == 8 and refill == batching.AUTO_REFILL_FRACTION
    assert batching.resolve_batching("auto", None, embedded, _trials(), SAMPLING) == (
        batching.CPU_BATCH_SIZE, None)
    assert batching.resolve_batching(4, None, gpu, _trials(), SAMPLING) == (4, None)


# --- steering only the first k answer tokens -------------------------------------------------

TINY = Sampling(temperature=0.6, repetition_penalty=1.1, max_new_tokens=12)


def _tokens(model, sae, trials, batch_size=4):
    items = [(i, t) for i, t in enumerate(trials)]
    done = {f.key: f.tokens for batch in batching.run_batches(
        model, items, sae=sae, layer=model.spec.steering_layer, sampling=TINY,
        batch_size=batch_size) for f in batch}
    return [done[i] for i in range(len(trials))]


def _steered(k, seed=5, prompt="Question one?"):
    return Trial(prompt, Steering(3, 40.0, steer_tokens=k), seed=seed)


def test_steering_the_first_k_tokens_matches_full_steering_then_leaves(tiny_model, tiny_sae):
    full, none, first4 = _tokens(tiny_model, tiny_sae, [
        _steered(None), Trial("Question one?", Steering(), seed=5), _steered(4)])
    assert first4[:4] == full[:4]
    assert first4 != full  # the boost is large enough that switching it off shows
    zero, past_the_end = _tokens(tiny_model, tiny_sae, [_steered(0), _steered(50)])
    assert zero == none and past_the_end == full


def test_a_scheduled_row_is_independent_of_its_batch(tiny_model, tiny_sae):
    mixed = [_steered(None, 1, "Another question?"), _steered(3, 2),
             Trial("Third question here?", Steering(), seed=3), _steered(7, 4, "Short?")]
    together = _tokens(tiny_model, tiny_sae, mixed, batch_size=4)
    alone = [_tokens(tiny_model, tiny_sae, [t], batch_size=1)[0] for t in mixed]
    assert together == alone


def test_the_schedule_steers_exactly_the_positions_read_while_on():
    rows = [batching._Row("a", _steered(3), [1, 2, 3], tokens=[7, 8, 9, 10]),
            batching._Row("b", _steered(None), [1, 2]),
            batching._Row("c", _steered(6), [1, 2, 3, 4], tokens=[7])]
    plan = SimpleNamespace(with_schedule=lambda read, step: (read, step))
    (read, step), steps = batching._schedule(plan, rows, steps=12)
    assert steps == 5  # row c is steered for 5 more tokens, then the round must end
    # row a (width 7, no padding): its 3 input tokens and answer tokens 1-2 were read while on
    assert read[0].tolist() == [1, 1, 1, 1, 1, 0, 0] and step[0] == 0
    assert read[1].sum() == 7 and step[1] == 1 and read[2].sum() == 7 and step[2] == 1


def test_a_masked_plan_adds_only_where_the_mask_says():
    from esr_utils.steering import InterventionPlan

    add = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    plan = InterventionPlan(add, None, None).with_schedule(
        torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), torch.tensor([0.0, 1.0]))
    h = torch.zeros(2, 3, 2)
    out = plan.apply(h)
    assert out[0, 0].tolist() == [0, 0] and out[0, 2].tolist() == [1, 2]
    assert out[1, 0].tolist() == [3, 4] and out[1, 1].tolist() == [0, 0]
    step = plan.apply(torch.zeros(2, 1, 2))
    assert step[0, 0].tolist() == [0, 0] and step[1, 0].tolist() == [3, 4]


def test_steer_tokens_is_validated_and_absent_from_old_ids():
    with pytest.raises(ValueError, match="steer_tokens"):
        Steering(3, 1.0, steer_tokens=-1)
    assert "steer_tokens" not in Steering(3, 1.0).key()
    assert Steering(3, 1.0, steer_tokens=0).is_noop


@pytest.mark.parametrize("k", [1, 4])
def test_first_k_steering_equals_a_hand_written_cached_decoding_loop(embedded, unit_sae, k):
    """The reference: transformers' forward with its KV cache and a hook adding the vector on the
    passes that sample answer tokens 1..k; greedy, no penalty."""
    from esr_utils.finetuning.pipeline import base_hf

    greedy = Sampling(temperature=0.0, repetition_penalty=1.0, max_new_tokens=10)
    boost = 150.0
    trial = Trial("Explain how a bicycle works.", Steering(2, boost, steer_tokens=k), seed=5)
    ours = next(batching.run_batches(embedded, [(0, trial)], sae=unit_sae,
                                     layer=embedded.spec.steering_layer, sampling=greedy,
                                     batch_size=1))[0].tokens

    hf, _ = base_hf()
    vector = boost * unit_sae.steer_row(2)
    on = {"value": True}

    def hook(module, args, output):
        if not on["value"]:
            return output
        if isinstance(output, tuple):
            return (output[0] + vector,) + output[1:]
        return output + vector

    def decode(steered_passes):
        ids = torch.tensor([batching.turn_ids(embedded.tokenizer, trial.prompt)])
        tokens, past = [], None
        with torch.no_grad():
            for step in range(greedy.max_new_tokens):
                on["value"] = step < steered_passes  # the pass sampling answer token step + 1
                out = hf(input_ids=ids, past_key_values=past, use_cache=True)
                past = out.past_key_values
                tokens.append(int(out.logits[0, -1].argmax()))
                ids = torch.tensor([[tokens[-1]]])
        end = next((i + 1 for i, t in enumerate(tokens) if t in batching.stop_ids(embedded)),
                   len(tokens))
        return tokens[:end]

    handle = hf.model.layers[embedded.spec.steering_layer].register_forward_hook(hook)
    reference, one_pass_longer = decode(k), decode(k + 1)
    handle.remove()
    assert reference != one_pass_longer, "the test cannot tell where the steered span ends"
    assert ours == reference
