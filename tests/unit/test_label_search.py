"""Concept labels chosen by training AUC: the chosen phrase separates a latent's windows."""

from __future__ import annotations

import numpy as np

from esr_utils.saes.training.label_scores import auc_rows
from esr_utils.saes.training.label_search import (
    auc_matrix,
    firing_words,
    pair_candidates,
    search_labels,
)


class _FakeMiniLM:
    """Unit vectors for known words; a phrase "A and B" is the normalised sum of its words."""

    def __init__(self, basis: dict[str, np.ndarray]):
        self.basis = basis

    def encode(self, texts, **_):
        out = []
        for t in texts:
            v = sum(self.basis[w] for w in t.split(" and "))
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def _setup(seed=0, n=400):
    rng = np.random.default_rng(seed)
    words = ["flour", "baking", "violin", "river", "engine"]
    basis = dict(zip(words, np.linalg.qr(rng.normal(size=(16, 16)))[0].T))
    topic = rng.integers(0, 5, n)  # each window is about one word, plus noise
    vecs = np.array([basis[words[k]] + 0.3 * rng.normal(size=16) for k in topic])
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    # latent 0 fires on flour and baking windows, latent 1 on river windows, latent 2 on noise
    acts = np.zeros((n, 3), dtype=np.float32)
    acts[:, 0] = np.isin(topic, [0, 1]) * rng.uniform(1, 2, n)
    acts[:, 1] = (topic == 3) * rng.uniform(1, 2, n)
    acts[:, 2] = (rng.uniform(size=n) < 0.2) * 1.0
    return words, basis, vecs, acts, topic


def test_auc_matrix_equals_the_scoring_statistic():
    """The training AUC is exactly the held-out score's Mann-Whitney AUC."""
    rng = np.random.default_rng(3)
    cands = rng.normal(size=(7, 16)).astype(np.float32)
    wins = rng.normal(size=(60, 16)).astype(np.float32)
    fired = rng.uniform(size=(60, 4)) < 0.3
    fired[:, 3] = False  # never fires: 0.5
    got = auc_matrix(cands, wins, fired, chunk=3)
    for j in range(3):
        np.testing.assert_allclose(got[:, j], auc_rows(cands @ wins.T, np.tile(fired[:, j], (7, 1)),
                                                       min_positives=1), atol=1e-6)
    assert (got[:, 3] == 0.5).all()


def test_search_picks_the_phrase_that_separates_the_latent():
    """The latent firing on flour and baking windows is labelled with both; the river latent
    with river; a random latent still gets a phrase but a training AUC near chance."""
    words, basis, vecs, acts, _ = _setup()
    lex = {w: "noun.food" if w in ("flour", "baking") else "noun.object" for w in words}
    out = search_labels(_FakeMiniLM(basis), vecs, acts > 0, acts, [" x"] * len(vecs), lex,
                        [0, 1, 2], progress=False)
    assert sorted(out[0]["concept_words"]) == ["baking", "flour"]
    assert out[0]["concept"] in ("flour and baking", "baking and flour")
    assert out[0]["concept_lexname"] == "noun.food"
    assert out[0]["train_auc"] > 0.95
    assert out[1]["concept"] == "river" and out[1]["train_auc"] > 0.95
    assert out[2]["train_auc"] < 0.65


def test_rare_latents_are_left_to_the_fallback():
    words, basis, vecs, acts, _ = _setup()
    acts[:, 1] = 0.0
    acts[:4, 1] = 1.0  # four firing windows: too few to choose on
    out = search_labels(_FakeMiniLM(basis), vecs, acts > 0, acts, [" x"] * len(vecs),
                        dict.fromkeys(words, "noun.object"), [0, 1], progress=False)
    assert 1 not in out and 0 in out


def test_firing_words_are_whole_words_without_artefacts():
    """Sub-word pieces, digits, punctuation and chat-template tokens never become candidates."""
    tokens = [" flour", "atro", " 1", " (", "<|im_start|>", " Baking", " of", " the"]
    acts = np.array([[3.0], [9.0], [8.0], [7.0], [6.0], [2.0], [1.0], [0.0]])
    assert firing_words(tokens, acts, k=10) == {"flour", "baking"}
    assert firing_words(tokens, acts, k=1) == set()  # "atro" is the strongest: no word


def test_pairs_skip_variants_of_the_same_word():
    words = ["bake", "baking", "flour", "baking flour", "floor", "oven"]
    order = np.arange(6)
    assert pair_candidates(order, words, n=3) == ["bake and flour", "bake and floor",
                                                  "flour and floor"]
    assert pair_candidates(order[2:], words, n=3) == ["flour and floor", "flour and oven",
                                                      "floor and oven"]
