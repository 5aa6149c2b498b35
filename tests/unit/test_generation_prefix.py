"""A forced assistant prefix: where its tokens go, what the record holds, ids, batches."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from esr_utils.generation import Sampling, Trial, generate_trials, tokenize_chats, tokenize_turns
from esr_utils.prompts import chat_text
from esr_utils.provenance import digest
from esr_utils.steering import Steering

PROMPTS = ["Explain how to add two fractions.", "How do you boil an egg?"]


def _row(batch, i):
    """Row i's tokens without the left padding."""
    return batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()


def test_prefix_tokens_come_right_after_the_assistant_header(embedded_tokenizer):
    tok = embedded_tokenizer
    prefix = "Fractions are like pizza slices"
    batch = tokenize_turns(tok, PROMPTS, [prefix, ""])
    chat = tok(chat_text(tok, PROMPTS[0]), add_special_tokens=False)["input_ids"]
    own = tok(prefix, add_special_tokens=False)["input_ids"]
    assert _row(batch, 0) == chat + own
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    assert chat[-len(header):] == header  # so the prefix follows the header directly
    assert tok.decode(_row(batch, 0)) == chat_text(tok, PROMPTS[0]) + prefix
    # the prefix-less row is its plain chat, left-padded to the longer row
    assert _row(batch, 1) == tok(chat_text(tok, PROMPTS[1]), add_special_tokens=False)["input_ids"]
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][:, -1].all()


def test_no_prefix_tokenizes_exactly_as_before(embedded_tokenizer):
    old = tokenize_chats(embedded_tokenizer, PROMPTS)
    new = tokenize_turns(embedded_tokenizer, PROMPTS, ["", ""])
    assert torch.equal(old["input_ids"], new["input_ids"])
    assert torch.equal(old["attention_mask"], new["attention_mask"])
    with pytest.raises(ValueError, match="1 prefixes for 2 prompts"):
        tokenize_turns(embedded_tokenizer, PROMPTS, [""])


def test_ids_without_prefix_are_unchanged_and_prefixes_never_collide():
    sampling = Sampling(max_new_tokens=8)
    trial = Trial("Hi?", Steering(3, 2.0), seed=5)
    old_payload = dict(model="m", layer=2, sampling=asdict(sampling), prompt="Hi?",
                       steering={"latent_id": 3, "boost": 2.0, "ablate": ()}, seed=5)
    assert trial.content_id("m", 2, sampling) == digest(old_payload)[:16]
    assert Trial("Hi?", Steering(3, 2.0), seed=5, assistant_prefix=None) == trial
    ids = {Trial("Hi?", Steering(3, 2.0), seed=5, assistant_prefix=p).trial_id("m", 2, sampling)
           for p in ("", "A", "A ", "B")}
    assert len(ids) == 4
    with pytest.raises(ValueError, match="assistant_prefix must be text"):
        Trial("Hi?", assistant_prefix=[1, 2])


def test_greedy_continuation_starts_exactly_at_the_cut(embedded, embedded_tokenizer):
    """Greedy decoding from its own first k tokens continues as the plain trial did."""
    model = embedded
    sampling = Sampling(temperature=0.0, max_new_tokens=16)
    plain = generate_trials(model, [Trial(PROMPTS[0])], sampling=sampling, progress=False)[0]
    tokens = embedded_tokenizer(plain["response"], add_special_tokens=False)["input_ids"]
    prefix = embedded_tokenizer.decode(tokens[:6])
    assert embedded_tokenizer(prefix, add_special_tokens=False)["input_ids"] == tokens[:6]
    forced = generate_trials(model, [Trial(PROMPTS[0], assistant_prefix=prefix)],
                             sampling=Sampling(temperature=0.0, max_new_tokens=10),
                             progress=False)[0]
    assert forced["assistant_prefix"] == prefix and forced["n_prefix_tokens"] == 6
    assert forced["response"] == prefix + forced["continuation"]
    assert forced["response"] == plain["response"]
    assert forced["n_new_tokens"] == plain["n_new_tokens"] - 6
    assert "continuation" not in plain and "assistant_prefix" not in plain


def test_each_row_depends_only_on_its_own_prefix(tiny_model, tiny_sae):
    sampling = Sampling(max_new_tokens=6)
    trials = [Trial("Hi?", Steering(2, 1.0), seed=1, assistant_prefix="Sure, here is"),
              Trial("Hi?", Steering(2, 1.0), seed=1),
              Trial("Why is the sky blue?", seed=2, assistant_prefix="Because of light"),
              Trial("Hello?", Steering(5, 1.5), seed=3, assistant_prefix="Wait")]
    batched = generate_trials(tiny_model, trials, sae=tiny_sae, sampling=sampling, batch_size=4,
                              progress=False)
    for trial, record in zip(trials, batched):
        solo = generate_trials(tiny_model, [trial], sae=tiny_sae, sampling=sampling,
                               progress=False)[0]
        assert solo["response"] == record["response"], trial
        assert record["response"].startswith(trial.assistant_prefix)
    assert batched[0]["trial_id"] != batched[1]["trial_id"]


def test_forced_token_ids_continue_exactly_where_the_model_was(embedded):
    """A prefix given as the model's own token ids (never re-tokenized) continues token for token
    as the plain trial did, and the record keeps prefix and continuation apart."""
    greedy = Sampling(temperature=0.0, max_new_tokens=16)
    plain = generate_trials(embedded, [Trial(PROMPTS[1])], sampling=greedy, progress=False)[0]
    cut = tuple(plain["tokens"][:7])
    forced = generate_trials(embedded, [Trial(PROMPTS[1], prefix_tokens=cut)],
                             sampling=Sampling(temperature=0.0, max_new_tokens=9),
                             progress=False)[0]
    assert forced["prefix_tokens"] == list(cut) and forced["n_prefix_tokens"] == 7
    assert forced["tokens"] == plain["tokens"][7:]
    assert forced["response"] == forced["assistant_prefix"] + forced["continuation"]
    assert forced["response"] == plain["response"]


def test_token_prefixes_are_checked_and_keyed_apart_from_text():
    sampling = Sampling(max_new_tokens=8)
    with pytest.raises(ValueError, match="not both"):
        Trial("Hi?", assistant_prefix="Sure", prefix_tokens=(5,))
    with pytest.raises(ValueError, match="token ids"):
        Trial("Hi?", prefix_tokens=(5, "x"))
    ids = {Trial("Hi?", seed=5, **kw).content_id("m", 2, sampling)
           for kw in ({}, {"prefix_tokens": (5,)}, {"prefix_tokens": (5, 6)},
                      {"assistant_prefix": "Sure"})}
    assert len(ids) == 4


def test_a_token_prefix_is_the_longest_start_of_the_answer_inside_the_cut(embedded_tokenizer):
    from esr_utils.prefill import cut_prefix, token_prefix

    text = "Baking bread takes flour, water, salt and yeast, and a little patience."
    tokens = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    cut = cut_prefix(text, 30)
    ids = token_prefix(embedded_tokenizer, tokens, cut)
    assert embedded_tokenizer.decode(list(ids)) == cut  # a cut before a space is a token boundary
    inside = token_prefix(embedded_tokenizer, tokens, text[:9])  # "Baking br": inside a token
    assert text[:9].startswith(embedded_tokenizer.decode(list(inside)))
    assert len(inside) < len(ids) and token_prefix(embedded_tokenizer, tokens, "") == ()
