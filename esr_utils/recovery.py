"""Explicit vs implicit recovery, offline: the prompt-relevance trajectory of an answer's sentences.

What it measures, and no more: each sentence's cosine similarity to the prompt (MiniLM sentence
embeddings, the offline judge's), averaged over the first and over the last third of the
sentences. An answer **recovers** when its opening third is off topic (mean below `tau`) and its
closing third on topic (at or above `tau`). A recovery is **explicit** when the judge split the
answer into several attempts (a restart it recognised), **implicit** (gradual) otherwise.
It says nothing about whether the closing part answers the question well, only that it is
about the question; `tau` is chosen on answers to other prompts (`choose_tau`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from esr_utils.judging.segmenting import split_sentences

__all__ = ["Trajectory", "trajectory", "choose_tau", "recovery_kind", "KINDS", "tau_from_answers",
           "constructed_cases"]

KINDS = ("explicit recovery", "implicit recovery", "no recovery", "on topic from the start",
         "too short")


@dataclass(frozen=True)
class Trajectory:
    """Per-sentence relevance to the prompt, and the means of the first and last thirds."""

    relevance: tuple[float, ...]

    def _third(self, last: bool) -> float:
        n = len(self.relevance)
        k = max(1, n // 3)
        part = self.relevance[-k:] if last else self.relevance[:k]
        return float(np.mean(part))

    @property
    def start(self) -> float:
        return self._third(last=False)

    @property
    def end(self) -> float:
        return self._third(last=True)

    @property
    def recovery(self) -> float:
        """end − start: how much closer to the prompt the answer ends than it began."""
        return self.end - self.start


def trajectory(prompt: str, response: str, embed: Callable[[Sequence[str]], np.ndarray]
               ) -> Trajectory:
    """`embed(texts)` returns unit vectors, one row per text (e.g. `Embedder.full`)."""
    sentences = [response[s:e] for s, e in split_sentences(response)]
    if not sentences:
        return Trajectory(())
    vectors = embed([prompt, *sentences])
    return Trajectory(tuple(float(x) for x in vectors[1:] @ vectors[0]))


def choose_tau(on_topic: Sequence[float], off_topic: Sequence[float]) -> float:
    """The cut between sentence relevances of on-topic and off-topic sentences that maximises
    balanced accuracy (midpoint between neighbouring candidates).

    >>> choose_tau([0.6, 0.7, 0.8], [0.1, 0.2, 0.65])
    0.4
    """
    on, off = np.asarray(on_topic, float), np.asarray(off_topic, float)
    if not len(on) or not len(off):
        raise ValueError("choose_tau needs on-topic and off-topic relevances")
    values = np.unique(np.concatenate([on, off]))
    cuts = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    accuracy = [((on >= c).mean() + (off < c).mean()) / 2 for c in cuts]
    return round(float(cuts[int(np.argmax(accuracy))]), 4)


def recovery_kind(path: Trajectory, tau: float, n_attempts: int, min_sentences: int = 3) -> str:
    """One of `KINDS` for an answer's trajectory, given how many attempts the judge found."""
    if len(path.relevance) < min_sentences:
        return "too short"
    if path.start >= tau:
        return "on topic from the start"
    if path.end < tau:
        return "no recovery"
    return "explicit recovery" if n_attempts > 1 else "implicit recovery"


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def _other(records: Sequence[dict], i: int) -> dict:
    """The next record with a different prompt (answers to another question)."""
    for step in range(1, len(records)):
        other = records[(i + step) % len(records)]
        if other["prompt"] != records[i]["prompt"]:
            return other
    raise ValueError("constructed cases need answers to at least two different prompts")


def tau_from_answers(records: Sequence[dict], embed) -> float:
    """`choose_tau` on unsteered answers: their sentences against their own prompt (on topic)
    and against another record's prompt (off topic)."""
    on, off = [], []
    for i, r in enumerate(records):
        sentences = _sentences(r["response"])
        if not sentences:
            continue
        vectors = embed([r["prompt"], _other(records, i)["prompt"], *sentences])
        on += list(vectors[2:] @ vectors[0])
        off += list(vectors[2:] @ vectors[1])
    return choose_tau(on, off)


def constructed_cases(records: Sequence[dict], n_sentences: int = 2) -> list[dict]:
    """Answers with a known shape, built from unsteered answers: for each record's prompt,
    `n_sentences` sentences of another prompt's answer (off) and of its own answer (on), joined
    as off→on (an implicit recovery), on→on (on topic from the start) and off→off (none)."""
    cases = []
    for i, r in enumerate(records):
        own = _sentences(r["response"])[:n_sentences]
        other = _sentences(_other(records, i)["response"])
        if len(own) < n_sentences or len(other) < 2 * n_sentences:
            continue
        off, off2 = other[:n_sentences], other[n_sentences:2 * n_sentences]
        for shape, parts, kind in (("off→on", off + own, "implicit recovery"),
                                   ("on→on", own + own[::-1], "on topic from the start"),
                                   ("off→off", off + off2, "no recovery")):
            cases.append({"prompt": r["prompt"], "response": " ".join(parts), "shape": shape,
                          "expected": kind})
    return cases
