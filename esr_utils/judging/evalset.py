"""A labelled set of responses for the offline judge, built offline from the embedded model's
own answers (`answers.py`) and the phrase families (`phrase_families.py`).

Every item knows its true attempts, their target scores (100 = answers this prompt, 50 = half
of it does, 0 = answers another prompt or is not language), and which of its sentences are
restart language. Off-topic text is real text from the same model: its answers to *other*
prompts. Each item carries the phrase family it uses, so validation can hold out whole families.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from esr_utils.judging.phrase_families import NEGATIVE_FAMILIES, RESTART_FAMILIES, topic_of
from esr_utils.judging.segmenting import split_sentences
from esr_utils.judging.types import JudgeInput

__all__ = ["EvalItem", "CLASSES", "BASE_FAMILIES", "build_eval_set", "word_salad"]

# class → (what it is, true target scores)
CLASSES = {
    "on_topic": "the model's own answer: one attempt, 100",
    "model_answer": "its own answer to one of the fine-tuning prompts, as generated: one, 100",
    "off_topic": "its answer to another prompt: one attempt, 0",
    "drift": "own answer, then another answer's second half, no restart: one attempt, 50",
    "degenerate": "a fluent opening, then a loop, a repeated sentence or word salad: one, 0",
    "leading_restart": "'Let me try again.'-style opening, then its own answer: one attempt, 100",
    "hard_negative": "an answer with a sentence that uses restart words without restarting: one",
    "correction": "off-topic, a restart, its own answer: two attempts, 0 → 100",
    "late_correction": "2–4 off-topic sentences, a restart, its own answer: 0 → 100",
    "reverse": "its own opening, a restart, off-topic text: 100 → 0",
    "failed_correction": "half on, half off, a restart, other off-topic text: 50 → 0",
    "triple": "off-topic, restart, other off-topic, restart, own answer: 0 → 0 → 100",
}
# families of the items without a phrase (degenerate items get one family per kind of damage)
# ("model_answer": the model's real answers to other prompts, where natural drift, lists and
# headers must not read as restarts)
BASE_FAMILIES = ("plain", "looped_word", "repeated_sentence", "word_salad", "salad_after_clause",
                 "model_answer")
_LEADING = ("Let me try again.", "I'll try again.", "Okay, once more.", "Let me start over.")
# the end of a sentence for `split_sentences`: . ! ? plus closing marks, or a colon/semicolon
_CLOSED = re.compile(r"(?:[.!?][\"')\]*_]*|[:;])$")
_STRUCTURES = ("correction", "late_correction", "reverse", "failed_correction", "triple")


@dataclass(frozen=True)
class EvalItem:
    """One labelled response."""

    kind: str
    family: str
    prompt: str
    response: str
    true_scores: tuple[float, ...]
    restart_sentences: tuple[bool, ...] = ()
    label: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def n_attempts(self) -> int:
        return len(self.true_scores)

    @property
    def improves(self) -> bool:
        return self.true_scores[-1] > self.true_scores[0]

    def to_input(self) -> JudgeInput:
        return JudgeInput(self.prompt, self.response, self.label)


def _sentences(text: str) -> list[str]:
    return [text[s:e].strip() for s, e in split_sentences(text)]


def word_salad(words: Sequence[str], rng, n: int) -> str:
    """Fragments of real words glued with stray punctuation and odd capitals, the way steered
    small models degrade ("from(By WorkGeneron/BOREGRE")."""
    out = []
    for _ in range(n):
        w = str(words[int(rng.integers(len(words)))])
        if len(w) > 4 and rng.random() < 0.6:
            cut = int(rng.integers(2, len(w) - 1))
            w = w[:cut] + str(words[int(rng.integers(len(words)))])[cut // 2:].capitalize()
        if rng.random() < 0.3:
            w = w.upper()
        out.append(w + str(rng.choice(["", "", " ", "(", "/", ")", "-", "_", ".", "#", "2"])))
    return "".join(x if x.endswith((" ", "(", "/")) else x + " " for x in out).strip()


def _fill(phrase: str, prompt: str) -> str:
    topic = topic_of(prompt)
    return phrase.replace("{topic}", topic).replace("{Topic}", topic[:1].upper() + topic[1:])


def _assemble(parts: Sequence[tuple[str, bool]], rng) -> tuple[str, tuple[bool, ...]]:
    """Join (text, is_restart) parts; label each sentence of the result."""
    text, marks = "", []
    for k, (part, restart) in enumerate(parts):
        if k:
            # a part that does not end a sentence as `split_sentences` sees it would merge with
            # what follows ("... (AM) Let me try again." would be one sentence): new line
            closed = bool(_CLOSED.search(text.rstrip()))
            text += str(rng.choice([" ", " ", "\n\n", "\n"])) if closed else "\n"
        marks.append((len(text), len(text) + len(part), restart))
        text += part
    text = text.strip()
    labels = tuple(any(r and s < e2 and s2 < e for s2, e2, r in marks)
                   for s, e in split_sentences(text))
    return text, labels


def _opening(text: str, rng, lo: int = 1, hi: int = 3, min_words: int = 12) -> str:
    sentences = _sentences(text)
    k = int(rng.integers(lo, hi + 1))
    while len(" ".join(sentences[:k]).split()) < min_words and k < len(sentences):
        k += 1
    return " ".join(sentences[:k])


def build_eval_set(answers: Sequence[dict], prompts: Sequence[str] | None = None, *,
                   seed: int = 0, families: Sequence[str] | None = None,
                   model_answers: Sequence[dict] = ()) -> list[EvalItem]:
    """Items for the answers to `prompts` (all answers' prompts by default).

    Per answer: one item of each base family, one per negative family (inside an on-topic or
    an off-topic answer, alternately) and one per restart family (its structure cycles through
    correction, late correction, reverse, failed correction and triple). `families` keeps only
    those families. Off-topic text comes only from answers to other prompts in the same list.
    `model_answers` ({"prompt", "response"}) each become one "model_answer" item, unchanged.
    """
    rng = np.random.default_rng(seed)
    prompts = list(prompts) if prompts is not None else list(dict.fromkeys(a["prompt"]
                                                                           for a in answers))
    pool = {p: [a["response"].strip() for a in answers if a["prompt"] == p] for p in prompts}
    vocabulary = sorted({w.strip(".,:;!?*()\"'") for p in prompts for t in pool[p]
                         for w in t.split() if w.isalpha()})
    keep = set(families) if families is not None else None
    items: list[EvalItem] = []

    def other(*avoid):
        q = str(rng.choice([p for p in prompts if p not in avoid]))
        return q, pool[q][int(rng.integers(len(pool[q])))]

    def add(kind, family, prompt, parts, scores):
        if keep is not None and family not in keep:
            return
        text, labels = _assemble(parts, rng)
        items.append(EvalItem(kind, family, prompt, text, tuple(scores), labels))

    for n, (p, own) in enumerate((prompt, a) for prompt in prompts for a in pool[prompt]):
        s_own = _sentences(own)
        q, far = other(p)
        half = max(1, len(s_own) // 2)
        far_s = _sentences(far)
        drift = " ".join(s_own[:half] + far_s[len(far_s) // 2:])
        add("on_topic", "plain", p, [(own, False)], [100])
        add("off_topic", "plain", p, [(far, False)], [0])
        add("drift", "plain", p, [(drift, False)], [50])
        add("leading_restart", "plain", p, [(str(rng.choice(_LEADING)), True), (own, False)],
            [100])
        word = max((w.strip(".,:;!?*") for w in s_own[0].split()), key=len).lower()
        add("degenerate", "looped_word", p,
            [(s_own[0] + " " + " ".join([word] * int(rng.integers(25, 60))), False)], [0])
        add("degenerate", "repeated_sentence", p,
            [(" ".join([s_own[min(1, len(s_own) - 1)]] * int(rng.integers(6, 12))), False)], [0])
        add("degenerate", "word_salad", p,
            [(word_salad(vocabulary, rng, int(rng.integers(30, 70))), False)], [0])
        clause = " ".join(s_own[0].split()[: int(rng.integers(5, 10))])
        add("degenerate", "salad_after_clause", p,
            [(clause + " " + word_salad(vocabulary, rng, int(rng.integers(40, 80))), False)], [0])
        for k, (family, phrases) in enumerate(NEGATIVE_FAMILIES.items()):
            neg = _fill(str(rng.choice(phrases)), p)
            host, score = (s_own, 100) if (n + k) % 2 == 0 else (_sentences(far), 0)
            at = int(rng.integers(1, max(2, len(host))))
            add("hard_negative", family, p,
                [(" ".join(host[:at]), False), (neg, False), (" ".join(host[at:]), False)]
                if at < len(host) else [(" ".join(host), False), (neg, False)], [score])
        for k, (family, phrases) in enumerate(RESTART_FAMILIES.items()):
            structure = _STRUCTURES[(n + k) % len(_STRUCTURES)]
            r1, r2 = (_fill(str(x), p) for x in rng.choice(phrases, 2, replace=False))
            q1, far1 = other(p)
            off = _opening(far1, rng)
            if structure == "correction":
                parts, scores = [(off, False), (r1, True), (own, False)], [0, 100]
            elif structure == "late_correction":
                parts, scores = [(_opening(far1, rng, 2, 4, 25), False), (r1, True),
                                 (own, False)], [0, 100]
            elif structure == "reverse":
                parts, scores = [(_opening(own, rng), False), (r1, True), (off, False)], [100, 0]
            elif structure == "failed_correction":
                mixed = " ".join(s_own[:max(1, len(s_own) // 3)] + _sentences(off)[:2])
                _, far2 = other(p, q1)
                parts, scores = [(mixed, False), (r1, True), (_opening(far2, rng), False)], \
                    [50, 0]
            else:
                _, far2 = other(p, q1)
                parts = [(off, False), (r1, True), (_opening(far2, rng), False), (r2, True),
                         (own, False)]
                scores = [0, 0, 100]
            add(structure, family, p, parts, scores)
    for a in model_answers:
        add("model_answer", "model_answer", a["prompt"], [(a["response"].strip(), False)], [100])
    return items
