"""SAE training pipeline, quality metrics and labels, on a tiny random Llama and tiny SAEs."""

from __future__ import annotations

import pytest
import torch

from esr_utils.labels import LatentLabels, build_labels
from esr_utils.sae_eval import latent_statistics, splice_losses
from esr_utils.sae_training import TrainSettings, collect_activations, residuals, train_sae

D = 32


@pytest.fixture(scope="module")
def tiny_hf():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=D, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


class _Tok:
    pad_token_id = 0

    def decode(self, ids):
        return "".join(f" t{i}" for i in ids)


def _exact_sae(d: int):
    """relu(x) - relu(-x) = x: a standard SAE with d_sae = 2d that reconstructs exactly."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d, apply_b_dec_to_input=False))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_residuals_are_the_block_output(tiny_hf):
    """Stopping early must not change the activations: they equal the full pass's hidden state."""
    ids = torch.randint(0, 64, (2, 9))
    full = tiny_hf(input_ids=ids, output_hidden_states=True).hidden_states[2]  # after block 1
    torch.testing.assert_close(residuals(tiny_hf, ids, None, 1), full)


def test_collect_activations_drops_position_zero_and_padding(tiny_hf):
    """Position 0 is an outlier in the real model, and padding is not text: neither is kept."""
    contexts = [[5, 6, 7, 8], [9, 10]]
    data = collect_activations(tiny_hf, _Tok(), contexts, 1, progress=False)
    assert data["acts"].shape == (3 + 1, D)
    assert data["index"].tolist() == [[0, 1], [0, 2], [0, 3], [1, 1]]
    h = residuals(tiny_hf, torch.tensor([contexts[0]]), None, 1)[0]
    torch.testing.assert_close(data["acts"][:3].float(), h[1:], atol=1e-2, rtol=1e-3)


def test_statistics_of_an_exact_sae():
    """Known answer: perfect reconstruction (FVE 1) and one active latent per coordinate."""
    x = torch.randn(50, D)
    stats = latent_statistics(_exact_sae(D), x)
    assert stats["fve"] == pytest.approx(1.0, abs=1e-6)
    assert stats["l0"] == pytest.approx(D)
    assert stats["dead_fraction"] == 0.0 and stats["dense_fraction"] == 1.0


def test_splicing_an_exact_sae_recovers_all_the_loss(tiny_hf):
    tokens = torch.randint(0, 64, (3, 12))
    tokens[2, 8:] = -1  # padding
    out = splice_losses(_exact_sae(D), tiny_hf, tokens, 1)
    assert out["ce_spliced"] == pytest.approx(out["ce_clean"], abs=1e-4)
    assert out["loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert out["ce_zero"] != pytest.approx(out["ce_clean"], abs=1e-3)


def test_labels_hold_each_latents_top_token_and_list_dead_ones(tiny_hf):
    """The label store is evidence: the top example must be the latent's largest activation."""
    from sae_lens import StandardSAE, StandardSAEConfig

    contexts = [list(range(1 + i, 13 + i)) for i in range(4)]
    data = collect_activations(tiny_hf, _Tok(), contexts, 1, progress=False)
    torch.manual_seed(1)
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=8, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.b_enc[7] = -1e6  # never fires
    out = build_labels(sae, tiny_hf, _Tok(), data, 1, k=3)
    assert out["meta"]["dead"] == [7] and "7" not in out["latents"]
    acts = sae.encode(data["acts"].float())
    for key, entry in out["latents"].items():
        row = int(acts[:, int(key)].argmax())
        ctx, pos = data["index"][row].tolist()
        assert entry["top"][0]["token"] == f" t{contexts[ctx][pos]}"
        assert entry["top"][0]["act"] == pytest.approx(float(acts[row, int(key)]), abs=0.01)
        assert len(entry["promoted"]) == 8
    store = LatentLabels(out["meta"], out["latents"])
    assert store.label(7).startswith("dead")
    with pytest.raises(IndexError, match="0..7"):
        store.label(8)
    with pytest.raises(KeyError, match="dead"):
        store[7]


def test_label_store_round_trips(tmp_path):
    from esr_utils.labels import load_labels

    store = LatentLabels({"d_sae": 3, "n_live": 1, "dead": [0, 2], "n_tokens": 10},
                         {"1": {"frequency": 0.1, "promoted": [" cat", " dog"] + [" x"] * 6,
                                "top": [{"token": " cat", "context": "a[ cat]", "act": 2.0}]}})
    store.save(tmp_path / "labels.json.gz")
    again = load_labels(tmp_path)
    assert again.label(1) == store.label(1) == "fires on: cat | promotes: cat, dog, x"
    assert again.search("dog") == [1] and again.words(1) == ["cat"]


def test_training_returns_a_sliceable_jumprelu_with_folded_scaling():
    """BatchTopK training is saved as a JumpReLU SAE in input units, with L0 near k."""
    from esr_utils.saes import slice_sae

    torch.manual_seed(0)
    basis = torch.randn(24, D) * 5
    codes = torch.relu(torch.randn(4096, 24) - 1.0)
    acts = (codes @ basis + 100.0 * torch.randn(D) / D ** 0.5).half()
    settings = TrainSettings(d_sae=48, target_l0=4, epochs=6, batch_size=256, lr=3e-3)
    sae = train_sae(acts, settings, progress=False)
    assert sae.cfg.architecture() == "jumprelu"
    assert sae.cfg.normalize_activations == "none"
    stats = latent_statistics(sae, acts)
    assert 1 <= stats["l0"] <= 12
    assert stats["fve"] > 0.2  # unfolded scaling would put reconstructions far off (FVE << 0)
    slice_sae(sae, [0], [1, 2])  # ablation slicing accepts it


def test_concrete_ids_keep_physical_nouns_in_a_frequency_band():
    """Steering needs latents about things; abstract, rare or dense latents are left out."""
    entry = {"promoted": [" x"] * 8, "top": [{"token": " violin", "context": "", "act": 1.0}]}
    latents = {
        "0": {**entry, "frequency": 0.001, "topic": ["violin", "artifact", 5]},
        "1": {**entry, "frequency": 0.001, "topic": ["idea", "cognition", 8]},   # abstract
        "2": {**entry, "frequency": 0.5, "topic": ["dog", "animal", 8]},         # dense
        "3": {**entry, "frequency": 0.002, "topic": ["dog", "animal", 7]},
        "4": {**entry, "frequency": 0.002, "topic": ["cat", "animal", 2]},       # too few
        "5": {**entry, "frequency": 0.002},                                      # no topic
    }
    store = LatentLabels({"d_sae": 6, "n_live": 6, "dead": []}, latents)
    assert store.concrete_ids() == [3, 0]
    assert store.topic(3) == "dog" and store.topic(5) is None


def test_noun_topics_are_first_senses_of_mainly_nouns():
    from esr_utils.sae_corpus import WORDNET_DIR, noun_topics

    if not (WORDNET_DIR / "index.noun").exists():
        pytest.skip("needs the Debian package wordnet-base")
    topics = noun_topics()
    assert topics["violin"] == "artifact" and topics["dog"] == "animal"
    assert "have" not in topics and "small" not in topics and "assistant" not in topics
