"""SAE training pipeline, quality metrics and labels, on a tiny random Llama and tiny SAEs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esr_utils.saes import LatentLabels
from esr_utils.saes.training.activations import collect_activations, residuals
from esr_utils.saes.training.concepts import choose_concepts, dominant_word, top_examples
from esr_utils.saes.training.evaluate import latent_statistics, meets_targets, splice_losses
from esr_utils.saes.training.label_scores import auc_rows
from esr_utils.saes.training.settings import QUALITY_TARGETS, TrainSettings
from esr_utils.saes.training.train import train_sae

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


def test_one_massive_token_cannot_decide_the_fve():
    """An attention-sink token (norm ~100x) reconstructed perfectly would push FVE to ~1 on its
    own; the evaluation leaves such tokens out and counts them."""
    from esr_utils.saes.training.evaluate import outlier_tokens

    x = torch.randn(200, D)
    x[7] = 500.0
    mask = outlier_tokens(x)
    assert mask.tolist() == [i == 7 for i in range(200)]
    zero = _exact_sae(D)
    with torch.no_grad():
        zero.W_dec.zero_()
    assert latent_statistics(zero, x[~mask])["fve"] == pytest.approx(0.0, abs=0.05)


def test_splicing_an_exact_sae_recovers_all_the_loss(tiny_hf):
    tokens = torch.randint(0, 64, (3, 12))
    tokens[2, 8:] = -1  # padding
    out = splice_losses(_exact_sae(D), tiny_hf, tokens, 1)
    assert out["ce_spliced"] == pytest.approx(out["ce_clean"], abs=1e-4)
    assert out["loss_recovered"] == pytest.approx(1.0, abs=1e-3)
    assert out["ce_zero"] != pytest.approx(out["ce_clean"], abs=1e-3)


def test_top_examples_are_the_largest_activations_beyond_position_one(tiny_hf):
    """Label evidence is each latent's largest activations; positions 0 and 1 never count."""
    from sae_lens import StandardSAE, StandardSAEConfig

    contexts = [list(range(1 + i, 13 + i)) for i in range(4)]
    data = collect_activations(tiny_hf, _Tok(), contexts, 1, progress=False)
    torch.manual_seed(1)
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=8, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.b_enc[7] = -1e6  # never fires
    vals, rows, counts, n = top_examples(sae, data, k=3)
    keep = data["index"][:, 1] >= 2
    acts = sae.encode(data["acts"].float())
    acts[~keep] = 0.0
    assert n == int(keep.sum()) and counts[7] == 0
    assert counts.tolist() == (acts > 0).sum(0).tolist()
    for j in range(7):
        expected = acts[:, j].topk(3).values
        torch.testing.assert_close(vals[:, j], expected)
        assert all(data["index"][r, 1] >= 2 for r in rows[:, j].tolist())


def test_concepts_follow_the_distinctive_direction_and_the_dominant_word():
    """A latent gets the candidates nearest its contexts' mean minus all latents' mean."""
    e = np.eye(4, dtype=np.float32)
    contexts = {0: np.stack([e[0] + e[3], e[0] + e[3]]), 1: np.stack([e[1] + e[3], e[1] + e[3]])}
    cands = np.stack([e[0], e[1], e[3], (e[0] + e[2]) / 2 ** 0.5])
    words, lex = ["violin", "dog", "thing", "cello"], ["noun.artifact", "noun.animal",
                                                       "noun.Tops", "noun.artifact"]
    out = choose_concepts(contexts, cands, words, lex)
    # "thing" matches every latent's contexts equally, so the centring removes it
    assert out[0] == {"concept": "violin and cello", "concept_words": ["violin", "cello"],
                      "concept_lexname": "noun.artifact"}
    assert out[1]["concept_words"][0] == "dog"
    lexical = choose_concepts(contexts, cands, words, lex, dominant={0: "which"})
    assert lexical[0]["concept"] == "which and violin" and lexical[0]["concept_lexname"] is None
    assert dominant_word([" which", " which", "which", " which", " of"]) == "which"
    assert dominant_word([" which", " which", " of"]) is None


def test_auc_rows_is_the_mann_whitney_statistic():
    scores = np.array([[0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5],
                       [0.1, 0.2, 0.9, 0.8, 0.7, 0.6, 0.5],
                       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    pos = np.array([[1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, 0]],
                   dtype=bool)
    auc = auc_rows(scores, pos, min_positives=2)
    assert auc[0] == 1.0 and auc[1] == 0.0
    assert auc[2] == pytest.approx(3 / 12)  # positives 0.1, 0.3, 0.5 beat 0, 1, 2 of 4 negatives
    assert np.isnan(auc_rows(scores, pos, min_positives=3)[0])


def test_quality_targets_are_checked_per_metric():
    good = {"fve": 0.8, "loss_recovered": 0.95, "l0": 64.0}
    assert all(meets_targets(good, QUALITY_TARGETS).values())
    assert meets_targets({**good, "fve": 0.7}, QUALITY_TARGETS) == {
        "fve": False, "loss_recovered": True, "l0": True}
    assert not meets_targets({**good, "l0": 200.0}, QUALITY_TARGETS)["l0"]


def test_label_store_round_trips(tmp_path):
    from esr_utils.saes import load_labels

    entry = {"frequency": 0.1, "concept": "cat and kitten", "concept_words": ["cat", "kitten"],
             "concept_lexname": "noun.animal", "auc": 0.9,
             "top": [{"token": " cat", "context": "a[ cat]", "act": 2.0}]}
    store = LatentLabels({"d_sae": 3, "n_live": 1, "dead": [0, 2], "n_tokens": 10}, {"1": entry})
    store.save(tmp_path / "labels.json.gz")
    again = load_labels(tmp_path)
    assert again.label(1) == store.label(1) == "cat and kitten"
    assert again[1]["label"] == "cat and kitten"
    assert again.search("kitten") == [1] and again.words(1) == ["cat", "kitten"]
    assert again.label(0).startswith("dead")
    with pytest.raises(KeyError, match="dead"):
        again[0]


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


def test_concrete_ids_keep_physical_concepts_that_predict_firing():
    """Steering needs latents about things; abstract, unpredictive, rare or dense ones are out."""
    top = [{"token": " violin", "context": "a[ violin]", "act": 1.0}]

    def entry(freq, lexname, auc, word="violin"):
        return {"frequency": freq, "concept": word, "concept_words": [word],
                "concept_lexname": lexname, "auc": auc, "top": top}

    latents = {
        "0": entry(0.001, "noun.artifact", 0.80),
        "1": entry(0.001, "noun.cognition", 0.95, "idea"),  # abstract
        "2": entry(0.5, "noun.animal", 0.95, "dog"),        # dense
        "3": entry(0.002, "noun.animal", 0.90, "dog"),
        "4": entry(0.002, "noun.animal", 0.60, "cat"),      # label does not predict firing
        "5": entry(0.002, "noun.animal", None, "cat"),      # not scored
    }
    store = LatentLabels({"d_sae": 6, "n_live": 6, "dead": []}, latents)
    assert store.concrete_ids() == [3, 0]
    assert store.topic(3) == "dog"


def test_recorded_command_names_no_machine_folder(tmp_path):
    """The card records the command without this machine's scratch paths; repo paths stay."""
    from esr_utils.saes.training.__main__ import recorded_command

    command = recorded_command(["--out", "esr_utils/data/embedded_sae", "--cache",
                                str(tmp_path / "sae_training"), "--threads", "1"])
    assert command == ("python -m esr_utils.saes.training --out esr_utils/data/embedded_sae "
                       "--cache <folder> --threads 1")
