"""Latent filters on a tiny SAE with planted active latents."""

from __future__ import annotations

import pytest
import torch

from esr_utils.latent_selection import (
    concreteness_proxy,
    grade_concreteness,
    latent_pool,
    prompt_token_maxima,
    relevant_by_prompt_tokens,
    relevant_by_response_top_k,
    sample_candidates,
    select_latents,
)
from esr_utils.prompts import chat_text
from esr_utils.residual import latent_activation_stats


@pytest.fixture(scope="module")
def planted_sae():
    """Latents 0–3 always fire (huge encoder bias), latents 4+ never fire (huge negative bias)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=64, d_sae=16, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.01)
        sae.b_enc.fill_(-1e4)
        sae.b_enc[:4] = torch.tensor([1e3, 2e3, 3e3, 4e3])
    return sae


def test_candidates_are_reproducible_distinct_and_from_the_evaluation_pool():
    a = sample_candidates(100, 20, seed=3, exclude=[4, 6])
    assert a == sample_candidates(100, 20, seed=3, exclude=[4, 6])
    assert len(set(a)) == 20 and not {4, 6} & set(a)
    assert set(a) <= set(latent_pool("evaluation", 100).tolist())
    assert a != sample_candidates(100, 20, seed=4)
    with pytest.raises(ValueError, match="only 48 latents of the evaluation pool"):
        sample_candidates(100, 49, seed=0, exclude=[0, 2])


def test_candidates_keep_their_random_draw_order():
    """Selection keeps the first survivors in draw order; sorted candidates favour low ids."""
    a = sample_candidates(1000, 50, seed=0)
    assert a != sorted(a)


def test_prompt_token_filter_drops_latents_that_fire_on_prompts(tiny_model, planted_sae):
    maxima = prompt_token_maxima(tiny_model, planted_sae, ["Hi there?", "How are you?"], layer=2)
    assert maxima.shape == (2, 16)
    kept = relevant_by_prompt_tokens(range(16), maxima)
    assert kept == list(range(4, 16))


def test_prompt_token_reading_covers_every_prompt_token_and_no_assistant_header(
        tiny_model, planted_sae):
    """The paper's code reads the user turn without the generation prompt, position 0 included."""
    tok = tiny_model.tokenizer
    without = tok.apply_chat_template([{"role": "user", "content": "Hi?"}],
                                      add_generation_prompt=False, tokenize=False)
    assert chat_text(tok, "Hi?").startswith(without) and chat_text(tok, "Hi?") != without
    expected, _ = latent_activation_stats(tiny_model, planted_sae, [without], 2, skip_first=False)
    got = prompt_token_maxima(tiny_model, planted_sae, ["Hi?"], layer=2)
    assert torch.equal(got, expected)


def test_response_top_k_filter_drops_the_most_active(tiny_model, planted_sae):
    texts = [chat_text(tiny_model.tokenizer, "Hi there?")]
    _, means = latent_activation_stats(tiny_model, planted_sae, texts, layer=2)
    kept = relevant_by_response_top_k(range(16), means, k=2)
    assert 3 not in kept and 2 not in kept and 1 in kept


def test_concreteness_proxy_orders_concrete_above_abstract():
    concrete = {"top": [{"token": " violin", "context": "a[ violin] and"},
                        {"token": " cello", "context": "the[ cello]."},
                        {"token": " viola", "context": "[ viola]"}]}
    abstract = {"top": [{"token": ",", "context": "yes[,] no"},
                        {"token": " the", "context": "in[ the] end"},
                        {"token": " comed", "context": "a[ comed]y of"}]}
    assert concreteness_proxy(concrete) == 100.0
    assert concreteness_proxy(abstract) == 0.0  # the fragment " comed" continues as "comedy"
    assert concreteness_proxy({"top": []}) == 0.0


def test_select_keeps_candidate_order_and_applies_median_cut():
    ratings = {1: 10.0, 2: 90.0, 3: 50.0, 4: 70.0, 5: 95.0}
    # median rating 70: 5 (95), 4 (70) and 2 (90) pass, in candidate order
    picked = select_latents([5, 4, 3, 2, 1], relevant=[1, 2, 3, 4, 5], concreteness=ratings, n=3)
    assert picked == [5, 4, 2]
    # relevance applies first; no labels skips concreteness
    assert select_latents([5, 4, 3], relevant=[3], concreteness=None, n=1) == [3]
    with pytest.raises(ValueError, match="only 1 candidates pass"):
        select_latents([5, 4, 3], relevant=[3], concreteness=None, n=2)


class ScriptedBackend:
    """Stands in for an LLM API at the backend boundary: replays canned replies."""

    def __init__(self, *replies):
        self.replies, self.prompts = list(replies), []

    def complete(self, system, user):
        self.prompts.append(user)
        return self.replies.pop(0)


def test_llm_concreteness_is_read_per_batch_in_order():
    backend = ScriptedBackend('Sure! [{"label": "violin parts", "rating": 92}, '
                              '{"label": "commas", "rating": 4}]',
                              '```json\n[{"label": "rivers", "rating": 80}]\n```')
    ratings = grade_concreteness({7: "violin parts", 3: "commas", 9: "rivers"}, backend,
                                 batch_size=2)
    assert ratings == {7: 92.0, 3: 4.0, 9: 80.0}
    assert '"violin parts", "commas"' in backend.prompts[0]


@pytest.mark.parametrize("reply", ["no idea", '[{"label": "x"}]', '[{"rating": 150}]', "[]"])
def test_unreadable_concreteness_reply_raises_naming_the_batch(reply):
    with pytest.raises(ValueError, match="latents 1…1"):
        grade_concreteness({1: "x"}, ScriptedBackend(reply))
