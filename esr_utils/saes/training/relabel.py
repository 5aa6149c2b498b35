"""Concept labels for an SAE folder that already stores its top-activating contexts.

Rebuilding labels this way needs no pass over the training corpus: the contexts recorded when
the SAE was trained are embedded again. Examples at positions 0 and 1 are dropped (an
artefact: the token after the first one gets huge activations whatever it is); their position
is the number of tokens before the marked one, when fewer than the 8 kept.
"""

from __future__ import annotations

import numpy as np

from esr_utils.saes.labels import load_labels
from esr_utils.saes.training.concepts import (
    CONTEXT_BEFORE,
    MIN_POSITION,
    choose_concepts,
    concept_candidates,
    dominant_word,
    embed,
    plain,
)

__all__ = ["position_of", "relabel_from_examples"]

NO_CONTEXT = "unlabelled (fires only at the start of a text)"


def position_of(tokenizer, context: str) -> int | None:
    """The marked token's position in its text when the context reaches the start, else None."""
    before = context[: context.index("[")].replace("⏎", "\n")
    n = len(tokenizer(before, add_special_tokens=False)["input_ids"]) if before else 0
    return n if n < CONTEXT_BEFORE else None


def relabel_from_examples(folder, tokenizer, minilm, k: int = 3, progress: bool = True,
                          only: list[int] | None = None) -> dict:
    """The folder's label store with concept phrases rebuilt from the `k` strongest stored
    contexts of each latent (`only`: just these latents, for quick checks)."""
    store = load_labels(folder)
    latents, texts, owner = {}, [], []
    for key, entry in store.latents.items():
        if only is not None and int(key) not in only:
            continue
        kept = [ex for ex in entry["top"]
                if (position_of(tokenizer, ex["context"]) or MIN_POSITION) >= MIN_POSITION][:k]
        latents[key] = {"frequency": entry["frequency"], "top": kept}
        for ex in kept:
            texts.append(plain(ex["context"], tokenizer))
            owner.append(int(key))
    vecs = embed(minilm, texts, progress=progress)
    owner = np.array(owner)
    context_vecs = {j: vecs[owner == j] for j in sorted(set(owner.tolist()))}
    words, lexnames = concept_candidates(tokenizer)
    dominant = {int(k): dominant_word([ex["token"] for ex in e["top"]])
                for k, e in latents.items()}
    concepts = choose_concepts(context_vecs, embed(minilm, words, progress=progress), words,
                               lexnames, dominant)
    for key, entry in latents.items():
        entry.update(concepts.get(int(key), {"concept": NO_CONTEXT, "concept_words": [],
                                             "concept_lexname": None}))
    meta = {**store.meta, "n_candidates": len(words),
            "method": "concept: the two common WordNet nouns whose MiniLM embeddings are "
                      "closest to the mean embedding of the latent's top-activating contexts "
                      "(8 tokens before, 2 after; positions 0 and 1 dropped) minus the mean over "
                      "all latents; a word most top tokens are leads the phrase"}
    return {"meta": meta, "latents": latents}
