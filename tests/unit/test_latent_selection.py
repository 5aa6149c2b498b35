"""Latent filters on a tiny SAE with planted active latents."""

from __future__ import annotations

import pytest
import torch

from esr_utils.latents import (concreteness_proxy, grade_concreteness,
                               latent_activation_stats, relevant_by_prompt_tokens, relevant_by_response_top_k,
                               sample_candidates, select_latents)
from esr_utils.prompts import chat_text


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


def test_candidates_are_reproducible_and_distinct():
    a = sample_candidates(100, 20, seed=3, exclude=[5, 6])
    assert a == sample_candidates(100, 20, seed=3, exclude=[5, 6])
    assert len(set(a)) == 20 and not {5, 6} & set(a)
    assert a != sample_candidates(100, 20, seed=4)
    with pytest.raises(ValueError, match="only 98 latents are eligible"):
        sample_candidates(100, 99, seed=0, exclude=[1, 2])


def test_prompt_token_filter_drops_latents_that_fire_on_prompts(tiny_model, planted_sae):
    texts = [chat_text(tiny_model.tokenizer, p) for p in ("Hi there?", "How are you?")]
    maxima, means = latent_activation_stats(tiny_model, planted_sae, texts, layer=2)
    assert maxima.shape == means.shape == (2, 16)
    kept = relevant_by_prompt_tokens(range(16), maxima)
    assert kept == list(range(4, 16))


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
