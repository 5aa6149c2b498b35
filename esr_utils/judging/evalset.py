"""A labelled evaluation set for judges, built offline from the embedded model's own answers.

Every item has a known number of attempts and known per-attempt target scores (100 = the
answer to this prompt, 0 = an answer to another prompt). Self-corrections are assembled from
real text: an off-topic passage (the opening of the model's answer to a *different* prompt), a
restart phrase, and the model's on-topic answer. Restart phrases come in two sets: variants of
the paper's examples (`LISTED_PHRASES`) and phrasings written independently of the offline
judge's patterns (`HELD_OUT_PHRASES`). Hard negatives put "wait"/"actually"/"start over" into
an answer without any restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from esr_utils.judging.segmenting import split_sentences
from esr_utils.judging.types import JudgeInput, Verdict

__all__ = ["EvalItem", "KINDS", "LISTED_PHRASES", "HELD_OUT_PHRASES", "HARD_NEGATIVES",
           "build_eval_set", "score_against_truth"]

LISTED_PHRASES = (
    "Wait, that's not right.", "Let me try again.", "Let's start over.",
    "Actually, I made a mistake.", "I'd like to revise my answer.", "No, wait!",
    "Wait, I made a mistake!", "Hmm, that's not right. Let me try again.",
    "Oops, I got off topic.", "WAIT, THAT'S WRONG.",
)
HELD_OUT_PHRASES = (
    "Hold on, I drifted away from what you asked.",
    "Sorry, I went off on a tangent there. Here is the real answer:",
    "Hmm, none of that answers your question. Starting again:",
    "Correction: that was unrelated to your question.",
    "Let me refocus on your actual question.",
    "Oh no, I wandered off the subject. Back to it.",
    "Whoa, that was completely off-topic, my apologies.",
    "Ignore everything above; here is a proper answer.",
    "Okay, that was nonsense. Take two:",
    "I seem to have lost the thread. To answer properly:",
)
HARD_NEGATIVES = (
    "Wait until everything has cooled down before the next step.",
    "Actually, this is the step most people skip.",
    "You may have to wait a minute or two.",
    "If you make a mistake, you can simply start over.",
    "Let me know if you want to try again with different numbers.",
    "Wait, there's one more thing to keep in mind.",
    "Actually, there is an even easier way to think about it.",
    "Don't worry if it is not right the first time.",
    "Let's try it again with a bigger example.",
    "That is not the only way to do it, of course.",
    "It is easy to get distracted, so keep a checklist.",
    "Going back to the first step, check your work.",
)
# kind → what it tests
KINDS = {
    "on_topic": "the model's own answer: one attempt, high score",
    "off_topic": "an answer to another prompt: one attempt, low score",
    "mixed": "half own answer, half another answer, no restart: one attempt, middling score",
    "degenerate": "one sentence of the answer, then a word looped: one attempt, low score",
    "hard_negative": "own answer with a 'wait'/'actually' sentence that is no restart",
    "correction_listed": "off-topic, a listed restart phrase, on-topic: two attempts, improves",
    "correction_held_out": "off-topic, a held-out restart phrase, on-topic: two, improves",
    "reverse": "on-topic, a restart phrase, off-topic: two attempts, gets worse",
    "triple": "off-topic, restart, off-topic, restart, on-topic: three attempts, improves",
}


@dataclass(frozen=True)
class EvalItem:
    """One labelled response."""

    kind: str
    prompt: str
    response: str
    true_scores: tuple[float, ...]
    true_texts: tuple[str, ...] = ()
    label: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_attempts(self) -> int:
        return len(self.true_scores)

    def to_input(self) -> JudgeInput:
        return JudgeInput(self.prompt, self.response, self.label)


def _sentences(text: str) -> list[str]:
    return [text[s:e].strip() for s, e in split_sentences(text)]


def _opening(text: str, rng, min_words: int = 12) -> str:
    """The first 1–3 sentences (at least `min_words` words) of a passage."""
    sentences = _sentences(text)
    k = int(rng.integers(1, 4))
    out = " ".join(sentences[:k])
    while len(out.split()) < min_words and k < len(sentences):
        k += 1
        out = " ".join(sentences[:k])
    return out


def _join(parts: Sequence[str], rng) -> str:
    return "".join(p + (rng.choice([" ", "\n\n", "\n"]) if i < len(parts) - 1 else "")
                   for i, p in enumerate(parts))


def build_eval_set(answers: Sequence[dict], prompts: Sequence[str] | None = None, *,
                   seed: int = 0, kinds: Sequence[str] | None = None) -> list[EvalItem]:
    """Nine labelled items per answer (one per kind) for answers to `prompts`.

    Off-topic material comes only from answers to other prompts in the same list.
    """
    rng = np.random.default_rng(seed)
    prompts = list(prompts) if prompts is not None else list(dict.fromkeys(a["prompt"]
                                                                           for a in answers))
    by_prompt = {p: [a["response"] for a in answers if a["prompt"] == p] for p in prompts}
    kinds = list(kinds) if kinds is not None else list(KINDS)
    items = []

    def other(*avoid):
        q = prompts[int(rng.integers(len(prompts)))]
        while q in avoid:
            q = prompts[int(rng.integers(len(prompts)))]
        pool = by_prompt[q]
        return q, pool[int(rng.integers(len(pool)))]

    for p in prompts:
        for own in by_prompt[p]:
            own = own.strip()
            q, far = other(p)
            off = _opening(far, rng)
            listed = str(rng.choice(LISTED_PHRASES))
            held = str(rng.choice(HELD_OUT_PHRASES))
            any_phrase = str(rng.choice(LISTED_PHRASES + HELD_OUT_PHRASES))
            sentences = _sentences(own)
            made = {
                "on_topic": ([own], [own], (100.0,)),
                "off_topic": ([far.strip()], [far.strip()], (0.0,)),
            }
            half = max(1, len(sentences) // 2)
            far_sentences = _sentences(far)
            mixed = " ".join(sentences[:half] + far_sentences[len(far_sentences) // 2:])
            made["mixed"] = ([mixed], [mixed], (50.0,))
            word = max((w.strip(".,:;!?*") for w in sentences[0].split()), key=len).lower()
            loop = sentences[0] + " " + " ".join([word] * int(rng.integers(25, 60)))
            made["degenerate"] = ([loop], [loop], (0.0,))
            at = int(rng.integers(1, max(2, len(sentences))))
            negative = " ".join(sentences[:at] + [str(rng.choice(HARD_NEGATIVES))] + sentences[at:])
            made["hard_negative"] = ([negative], [negative], (100.0,))
            made["correction_listed"] = ([off, listed, own], [off, own], (0.0, 100.0))
            made["correction_held_out"] = ([off, held, own], [off, own], (0.0, 100.0))
            lead = _opening(own, rng)
            made["reverse"] = ([lead, any_phrase, off], [lead, off], (100.0, 0.0))
            _, far2 = other(p, q)
            off2 = _opening(far2, rng)
            phrase2 = str(rng.choice(LISTED_PHRASES + HELD_OUT_PHRASES))
            made["triple"] = ([off, any_phrase, off2, phrase2, own], [off, off2, own],
                              (0.0, 0.0, 100.0))
            for kind in kinds:
                parts, texts, scores = made[kind]
                phrases = [x for x in parts if x in LISTED_PHRASES + HELD_OUT_PHRASES]
                items.append(EvalItem(kind=kind, prompt=p, response=_join(parts, rng),
                                      true_scores=scores, true_texts=tuple(texts),
                                      meta={"other_prompt": q, "phrases": phrases,
                                            "held_out": any(x in HELD_OUT_PHRASES
                                                            for x in phrases)}))
    return items


def _direction(scores: Sequence[float]) -> int:
    return int(np.sign(scores[-1] - scores[0]))


def score_against_truth(items: Sequence[EvalItem], verdicts: Sequence[Verdict]) -> dict:
    """Attempt-count accuracy, direction accuracy and score correlation against the labels.

    Direction accuracy is over items whose truth has several attempts: `direction_accuracy`
    counts a missed split as wrong; `direction_accuracy_detected` only looks at items the judge
    also split. Correlations pair the first (and last) attempt's score with its target.
    """
    rows = []
    for item, v in zip(items, verdicts, strict=True):
        scores = v.scores if v.ok else []
        rows.append(dict(
            kind=item.kind, held_out=item.meta.get("held_out", False), true_n=item.n_attempts,
            judged_n=len(scores) if v.ok else None,
            error=v.error, true_first=item.true_scores[0], true_last=item.true_scores[-1],
            first=scores[0] if scores else np.nan, last=scores[-1] if scores else np.nan,
            count_ok=v.ok and len(scores) == item.n_attempts,
            true_dir=_direction(item.true_scores),
            judged_dir=_direction(scores) if len(scores) > 1 else 0,
        ))
    multi = [r for r in rows if r["true_n"] > 1]
    detected = [r for r in multi if (r["judged_n"] or 0) > 1]
    valid = [r for r in rows if not np.isnan(r["first"])]
    first_r = np.nan
    if len(valid) > 2:
        first_r = float(np.corrcoef([r["first"] for r in valid],
                                    [r["true_first"] for r in valid])[0, 1])
    return {
        "n_items": len(rows),
        "count_accuracy": float(np.mean([r["count_ok"] for r in rows])),
        "n_multi": len(multi),
        "direction_accuracy": float(np.mean([r["judged_dir"] == r["true_dir"] for r in multi]))
        if multi else np.nan,
        "n_detected": len(detected),
        "direction_accuracy_detected": float(np.mean([r["judged_dir"] == r["true_dir"]
                                                      for r in detected])) if detected else np.nan,
        "first_score_r": first_r,
        "rows": rows,
    }
