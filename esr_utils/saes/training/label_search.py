"""Concept labels chosen by how well they predict where a latent fires.

The label of a latent is the candidate phrase that best tells its firing tokens from the rest,
measured on label-building text only (training documents; the held-out ones are kept for
`label_scores`):

1. windows: each token of the label-building text (positions ≥ `MIN_POSITION`: position 1
   carries an artefact) as a short plain-text window around it (`concepts.plain`), embedded
   with MiniLM;
2. candidates: common WordNet lemmas (nouns, verbs, adjectives and adverbs of one or two
   words, each word a common token of the model), plus the whole words the latents fire on
   most;
3. each candidate's score for each latent is the AUC of candidate-to-window similarity, firing
   windows against the rest (`label_scores.auc_rows`, the statistic held-out scoring uses);
4. the best `N_PAIR_FROM` distinct candidates are also joined in pairs, "baking and flour";
   the label is the single word or pair with the highest AUC.

Latents that fire on fewer than `MIN_TRAIN_POSITIVES` label-building windows keep the label
`concepts.choose_concepts` gives them from their stored top-activating contexts.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import torch
from tqdm.auto import tqdm

from esr_utils.saes.training.concepts import MAX_TOKEN_ID, MIN_POSITION, embed, plain, snippet
from esr_utils.saes.training.corpus import CORPUS_FILES, read_records

__all__ = ["MIN_TRAIN_POSITIVES", "N_PAIR_FROM", "lexicon", "windows", "firing_words",
           "auc_matrix", "pair_candidates", "search_labels"]

MIN_TRAIN_POSITIVES = 5
N_PAIR_FROM = 5  # the best single candidates a latent's pairs are made from
N_FIRING_WORDS = 30  # a latent's strongest firing tokens its words are taken from


def lexicon(tokenizer, max_token_id: int = MAX_TOKEN_ID) -> dict[str, str]:
    """{lemma: WordNet topic file of its first-listed (most common) sense}: lower-case
    alphabetic lemmas of one or two words, each word one common token with a leading space
    (id below `max_token_id`; BPE merges come roughly in frequency order)."""
    vocab = tokenizer.get_vocab()
    space = tokenizer.convert_ids_to_tokens(tokenizer(" a", add_special_tokens=False)
                                            ["input_ids"])[0][:-1]  # "Ġ" for GPT-2-style BPE
    found: dict[str, str] = {}
    for r in read_records(CORPUS_FILES[0]):
        for lemma in r["lemmas"][:3]:
            words = lemma.split("_")
            if (lemma in found or len(words) > 2 or len(lemma) < 3 or not lemma.isascii()
                    or not all(w.isalpha() and w.islower() for w in words)):
                continue
            if all(vocab.get(space + w, max_token_id) < max_token_id for w in words):
                found[" ".join(words)] = r["lexname"]
    return found


def windows(tokenizer, data: dict, minilm, max_windows: int | None = None, seed: int = 0,
            progress: bool = True) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """Activation rows (positions ≥ `MIN_POSITION`; a seeded sample of `max_windows`), their
    windows' plain text and MiniLM embeddings."""
    rows = (data["index"][:, 1] >= MIN_POSITION).nonzero().flatten()
    if max_windows is not None and len(rows) > max_windows:
        gen = torch.Generator().manual_seed(seed)
        rows = rows[torch.randperm(len(rows), generator=gen)[:max_windows]].sort().values
    texts = [plain(snippet(tokenizer, data["tokens"][c].tolist(), p)[1], tokenizer)
             for c, p in tqdm(data["index"][rows].tolist(), disable=not progress,
                              desc="windows")]
    return rows, texts, embed(minilm, texts, batch_size=256, progress=progress)


def firing_words(centre_tokens: list[str], acts: np.ndarray, k: int = N_FIRING_WORDS) -> set[str]:
    """Whole words (a leading space, ≥ 3 ASCII letters, lower-cased) among each latent's `k`
    strongest firing tokens; `acts` [n_windows, n_latents]."""
    words = [t[1:].lower() if t.startswith(" ") and t[1:].isascii() and t[1:].isalpha()
             and len(t) >= 4 else None for t in centre_tokens]
    found = set()
    for j in range(acts.shape[1]):
        firing = np.nonzero(acts[:, j] > 0)[0]
        top = firing[np.argsort(-acts[firing, j])[:k]]
        found.update(words[i] for i in top if words[i])
    return found


def auc_matrix(cand_vecs: np.ndarray, window_vecs: np.ndarray, fired: np.ndarray,
               chunk: int = 1000, progress: bool = False) -> np.ndarray:
    """AUC [n_candidates, n_latents] of candidate-to-window similarity, firing windows against
    the rest, for `fired` [n_windows, n_latents] (bool); 0.5 where a latent never fires."""
    positive = fired.astype(np.float32)
    n_pos = positive.sum(0)
    n_neg = positive.shape[0] - n_pos
    out = np.full((len(cand_vecs), fired.shape[1]), 0.5, dtype=np.float32)
    ok = (n_pos > 0) & (n_neg > 0)
    for s in tqdm(range(0, len(cand_vecs), chunk), disable=not progress, desc="candidate AUCs"):
        ranks = (cand_vecs[s:s + chunk] @ window_vecs.T).argsort(1).argsort(1)
        u = (ranks.astype(np.float32) + 1.0) @ positive[:, ok] - n_pos[ok] * (n_pos[ok] + 1) / 2
        out[s:s + chunk, ok] = u / (n_pos[ok] * n_neg[ok])
    return out


def pair_candidates(order: np.ndarray, words: list[str], n: int = N_PAIR_FROM) -> list[str]:
    """"A and B" for the first `n` distinct words of `order` (best first): variants of one
    word ("bake", "baking"; "flour", "baking flour") count as one."""
    chosen: list[str] = []
    for i in order:
        w = words[int(i)]
        if not any(_variants(w, c) for c in chosen):
            chosen.append(w)
        if len(chosen) == n:
            break
    return [f"{a} and {b}" for a, b in itertools.combinations(chosen, 2)]


def _variants(a: str, b: str) -> bool:
    """Whether two candidates are forms of one word: a shared word, or a common prefix of four
    letters (all but the last letter of a shorter word)."""
    if set(a.split()) & set(b.split()):
        return True
    prefix = len(os.path.commonprefix([a, b]))
    return prefix >= min(4, min(len(a), len(b)) - 1)


def search_labels(minilm, window_vecs: np.ndarray, fired: np.ndarray, acts: np.ndarray,
                  centre_tokens: list[str], lex: dict[str, str], latents: list[int],
                  progress: bool = True) -> dict[int, dict]:
    """{latent: {"concept", "concept_words", "concept_lexname", "train_auc"}} for every latent
    of `latents` firing on at least `MIN_TRAIN_POSITIVES` windows.

    `fired`, `acts`: [n_windows, d_sae]; `centre_tokens`: each window's marked token.
    """
    latents = [j for j in latents if fired[:, j].sum() >= MIN_TRAIN_POSITIVES]
    if not latents:
        return {}
    words = sorted(set(lex) | firing_words(centre_tokens, acts[:, latents]))
    cand_vecs = embed(minilm, words, batch_size=256, progress=progress)
    single = auc_matrix(cand_vecs, window_vecs, fired[:, latents], progress=progress)
    pairs = {j: pair_candidates(np.argsort(-single[:, col]), words)
             for col, j in enumerate(latents)}
    phrases = sorted({p for ps in pairs.values() for p in ps})
    pair_vecs = embed(minilm, phrases, batch_size=256, progress=progress)
    where = {p: i for i, p in enumerate(phrases)}
    out = {}
    for col, j in enumerate(tqdm(latents, disable=not progress, desc="pair AUCs")):
        vecs = pair_vecs[[where[p] for p in pairs[j]]]
        pair_auc = auc_matrix(vecs, window_vecs, fired[:, [j]])[:, 0] if len(vecs) else []
        best = int(single[:, col].argmax())
        phrase, auc = words[best], float(single[best, col])
        if len(pair_auc) and float(np.max(pair_auc)) > auc:
            phrase, auc = pairs[j][int(np.argmax(pair_auc))], float(np.max(pair_auc))
        parts = phrase.split(" and ") if " and " in phrase else [phrase]
        out[j] = {"concept": phrase, "concept_words": parts,
                  "concept_lexname": lex.get(parts[0]), "train_auc": round(auc, 4)}
    return out


METHOD = ("concept: the WordNet lemma, word the latent fires on, or pair of them ('A and B') "
          "whose MiniLM similarity to short windows around each token (4 tokens before, 2 after; "
          "positions 0 and 1 left out) best separates the tokens the latent fires on from the "
          "rest, by AUC on label-building (training) text; latents firing on fewer than "
          f"{MIN_TRAIN_POSITIVES} of those tokens keep the phrase nearest their top contexts")


@torch.no_grad()
def apply_search(labels: dict, sae, tokenizer, data: dict, minilm, max_windows: int | None = None,
                 progress: bool = True) -> dict:
    """`labels` (a label store: `build_labels` or `relabel_from_examples` output) with the
    concepts of latents firing on label-building `data` (`collect_activations` output of
    training text) replaced by `search_labels`' choice; returns `labels`, changed in place."""
    rows, _, window_vecs = windows(tokenizer, data, minilm, max_windows, progress=progress)
    acts = sae.encode(data["acts"][rows].float()).numpy()
    centre = [tokenizer.decode([int(data["tokens"][c, p])])
              for c, p in data["index"][rows].tolist()]
    live = sorted(int(k) for k in labels["latents"])
    chosen = search_labels(minilm, window_vecs, acts > 0, acts, centre,
                           lexicon(tokenizer), live, progress=progress)
    for j, concept in chosen.items():
        labels["latents"][str(j)].update(concept)
    labels["meta"].update(method=METHOD, n_label_windows=len(rows), n_searched=len(chosen))
    return labels
