"""Features of each sentence boundary for the offline judge's restart detector.

For sentence i of a response, everything is computed from the MiniLM sentence embeddings
(`embedding.Embedder`, cached per sentence) and a few surface cues:

- for windows of 1, 2 and 3 sentences and for all of the text on each side: the prompt
  relevance before and after i and its rise across i, the similarity of the two sides (a topic
  shift makes it low), and the similarity of sentence i to each side;
- the sentence's own relevance (whole sentence and its first word pieces), its similarity to the
  previous and the next sentence, whether its neighbours cohere without it (a restart sits
  between two texts that do not), and whether the text after it coheres;
- the similarity of the sentence and of its first word pieces to the paper's example restarts,
  whether a hand-written restart pattern matches (a cue, not the decision), and its length,
  position, closing punctuation and share of capitals.

All columns are computed at once per response with cumulative sums, so the cost is a few
matrix products per response.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from esr_utils.judging.embedding import Embedder, count_words
from esr_utils.judging.segmenting import RESTART_EXAMPLES, is_restart

__all__ = ["WINDOWS", "FEATURE_NAMES", "sentence_features"]

WINDOWS = (1, 2, 3)
_SIDES = tuple(f"w{w}" for w in WINDOWS) + ("all",)
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{name}_{side}" for side in _SIDES
    for name in ("rel_before", "rel_after", "rel_rise", "sides_cos", "self_before", "self_after")
) + ("rel_self", "rel_head", "self_prev", "self_next", "bridge", "bridge_gain", "coherence_after",
     "has_before", "has_after", "position", "log_words", "log_sentences", "pattern",
     "example_full", "example_head", "ends_colon", "ends_question", "ends_exclamation", "caps")


def _unit(m: np.ndarray) -> np.ndarray:
    return m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-12)


def _side_columns(F, rel, cw, cr, cf, w):
    """Columns for one window width `w` (n for all the text on each side), from cumulative
    word-weighted sums `cw` (words), `cr` (relevance) and `cf` (embeddings)."""
    n = len(F)
    idx = np.arange(n)
    has_b, has_a = idx > 0, idx < n - 1
    lo, hi = np.maximum(0, idx - w), np.minimum(n, idx + 1 + w)
    rb = np.where(has_b, (cr[idx] - cr[lo]) / np.maximum(cw[idx] - cw[lo], 1), 0.0)
    ra = np.where(has_a, (cr[hi] - cr[idx + 1]) / np.maximum(cw[hi] - cw[idx + 1], 1), 0.0)
    mb, ma = _unit(cf[idx] - cf[lo]), _unit(cf[hi] - cf[idx + 1])
    sides = np.where(has_b & has_a, (mb * ma).sum(1), 1.0)
    return [rb, ra, ra - rb, sides, (F * mb).sum(1), (F * ma).sum(1)]


def sentence_features(prompt: str, sentences: Sequence[str], embedder: Embedder) -> np.ndarray:
    """One row per sentence, columns `FEATURE_NAMES`."""
    n = len(sentences)
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    vecs = [embedder.get(s) for s in sentences]
    F = np.stack([v.full for v in vecs])
    H = np.stack([v.head for v in vecs])
    p = embedder.get(prompt).full
    examples = embedder.full(list(RESTART_EXAMPLES))
    rel = F @ p
    words = np.array([max(1, count_words(s)) for s in sentences], dtype=float)
    cw = np.concatenate([[0.0], np.cumsum(words)])
    cr = np.concatenate([[0.0], np.cumsum(rel * words)])
    cf = np.concatenate([np.zeros((1, F.shape[1])), np.cumsum(F * words[:, None], axis=0)])
    cols = [c for w in (*WINDOWS, n) for c in _side_columns(F, rel, cw, cr, cf, w)]
    idx = np.arange(n)
    S = F @ F.T
    prev = np.r_[0.0, S[idx[1:], idx[1:] - 1]]
    nxt = np.r_[S[idx[:-1], idx[:-1] + 1], 0.0]
    bridge = np.ones(n)  # no neighbour on one side: nothing to bridge
    bridge[1:-1] = S[idx[1:-1] - 1, idx[1:-1] + 1]
    coherence_after = np.zeros(n)
    coherence_after[:-2] = S[idx[:-2] + 1, idx[:-2] + 2]
    texts = [s.strip() for s in sentences]
    caps = [sum(map(str.isupper, s)) / max(1, sum(map(str.isalpha, s))) for s in texts]
    cols += [rel, H @ p, prev, nxt, bridge, bridge - np.maximum(prev, nxt), coherence_after,
             (idx > 0).astype(float), (idx < n - 1).astype(float), idx / max(1, n - 1),
             np.log1p(words), np.full(n, np.log(n)),
             np.array([float(is_restart(s)) for s in sentences]),
             (F @ examples.T).max(1), (H @ examples.T).max(1),
             np.array([s.endswith(":") for s in texts], dtype=float),
             np.array([s.endswith("?") for s in texts], dtype=float),
             np.array([s.endswith("!") for s in texts], dtype=float), np.asarray(caps)]
    return np.stack(cols, axis=1)
