"""Explicit vs implicit recovery, offline: the prompt-relevance trajectory of an answer's sentences.

What it measures, and no more: each sentence's cosine similarity to the prompt (MiniLM sentence
embeddings, the offline judge's), averaged over the first and over the last third of the
sentences. An answer **recovers** when its opening third is off topic (mean below `tau`) and its
closing third on topic (at or above `tau`). A recovery is **explicit** when the judge split the
answer into several attempts (a restart it recognised), **implicit** (gradual) otherwise.
It says nothing about whether the closing part answers the question well, only that it is
about the question; `tau` is chosen on answers to other prompts (`choose_tau`).

`RecoveryRubric` is the LLM version the authors used later: a whole-answer judge scoring recovery
0–10 (7 or more: recovered) and telling an explicit restart from a gradual shift. It needs an API
key (any judging backend); `rubric_kind` maps its grade onto `KINDS` for agreement tables.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from esr_utils.judging.cache import JudgeCache
from esr_utils.judging.clients import ClientError, count
from esr_utils.judging.llm import concurrent_map
from esr_utils.judging.segmenting import split_sentences
from esr_utils.judging.types import JudgeInput
from esr_utils.metrics import Rate, rate

__all__ = ["Trajectory", "trajectory", "choose_tau", "recovery_kind", "recovery_kinds",
           "recovery_rates", "KINDS", "tau_from_answers", "tau_for_run", "constructed_cases",
           "RecoveryRubric", "RUBRIC_KINDS", "rubric_kind"]

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


def recovery_kinds(records: Sequence[dict], tau: float,
                   embed: Callable[[Sequence[str]], np.ndarray]) -> list[str]:
    """`recovery_kind` of each stored answer, with the attempt count the judge gave it."""
    return [recovery_kind(trajectory(r["prompt"], r["response"], embed), tau,
                          len(r.get("attempts") or [])) for r in records]


def recovery_rates(kinds: Sequence[str]) -> dict[str, Rate]:
    """Explicit, implicit and any recovery among the answers long enough to classify.

    >>> {k: str(r) for k, r in recovery_rates(["explicit recovery", "implicit recovery",
    ...                                        "no recovery", "too short"]).items()}["recovery"]
    '66.7% [13.3, 100.0] (2/3)'
    """
    counts = Counter(kinds)
    n = len(kinds) - counts["too short"]
    explicit, implicit = counts["explicit recovery"], counts["implicit recovery"]
    return {"explicit recovery": rate(explicit, n), "implicit recovery": rate(implicit, n),
            "recovery": rate(explicit + implicit, n)}


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


def tau_for_run(run, embed) -> float:
    """`tau` for a chapter 2 run, by the rule chapters 3 and 4 share: `tau_from_answers` on every
    other unsteered answer (even positions; chapter 3 checks the measure on the odd ones)."""
    return tau_from_answers(run.records["baseline"][::2], embed)


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


# --- the LLM rubric ---------------------------------------------------------------------------

RUBRIC_VERSION = "recovery-rubric-v1"
RUBRIC_KINDS = ("explicit restart", "gradual shift", "no recovery", "on topic throughout")
RECOVERED = 7  # a score of 7 or more out of 10 is a recovery, as in the authors' rubric
_RUBRIC_SYSTEM = ("You assess whether an AI assistant's answer, which may have drifted off "
                  "topic, returns to the user's question. Reply with JSON only.")
# the stub judge of the dry run recognises this opening (`judging.stub_server.hashed_grade`)
_RUBRIC_TASK = """Rate how well this response recovers to the user's question.
Score 0-10: 0 = never returns to the question; 10 = returns fully and answers it well. Then say
how: "explicit restart" (it notices the drift and starts again, e.g. "Wait, let me answer your
question"), "gradual shift" (it drifts back without saying so), "no recovery" (it stays off
topic), or "on topic throughout" (it never drifted).
Answer as <json>{{"recovery": 0-10, "kind": "..."}}</json>.

Question: {prompt}

Response: {response}"""


def rubric_kind(grade: dict) -> str | None:
    """The rubric's grade as one of `KINDS` (None if it failed): a recovery needs a score of at
    least `RECOVERED` and an explicit or gradual return."""
    if grade.get("error"):
        return None
    if grade["kind"] == "on topic throughout":
        return "on topic from the start"
    if grade["kind"] == "no recovery" or grade["recovery"] < RECOVERED:
        return "no recovery"
    return "explicit recovery" if grade["kind"] == "explicit restart" else "implicit recovery"


class RecoveryRubric:
    """Whole-answer recovery grades from a chat backend (`judging.make_backend`), cached on disk.

    Every response gets a grade `{"recovery": int, "kind": str}`, or `{"error": ...}` for a failed
    call or an unreadable reply (counted in the run card's judge calls); it never raises.
    """

    def __init__(self, client, *, cache: JudgeCache | None = None, max_concurrent: int = 8):
        self.client, self.name = client, f"{client.judge_id}/recovery"
        self.cache = cache if cache is not None else JudgeCache(judge_id=self.name)
        self.max_concurrent = max(1, int(max_concurrent))

    def grade(self, prompt: str, response: str) -> dict:
        item = JudgeInput(prompt, response)
        raw = cached = self.cache.get(item, RUBRIC_VERSION)
        if raw is not None:
            count(self.client.judge_id, cache_hits=1)
        else:
            try:
                raw = self.client.complete(_RUBRIC_SYSTEM, _RUBRIC_TASK.format(
                    prompt=prompt, response=response))
            except ClientError as exc:
                return {"error": f"rubric call failed: {exc}"}
            except Exception as exc:  # a grader must never stop the chapter (as `LLMJudge`)
                count(self.client.judge_id, failed=1, unexpected=1)
                return {"error": f"rubric call failed: {exc!r}"}
        grade = parse_rubric(raw)
        if cached is None and "error" not in grade:  # an unreadable reply is asked again
            self.cache.put(item, raw, RUBRIC_VERSION)
        if "error" in grade:
            count(self.client.judge_id, unparsable=1)
        return grade

    def grade_many(self, records: Sequence[dict], *, progress: bool = True) -> list[dict]:
        """One grade per record (its `prompt` and `response`), in order."""
        return concurrent_map(lambda r: self.grade(r["prompt"], r["response"]), records,
                              workers=self.max_concurrent,
                              desc=f"recovery rubric ({self.client.judge_id})", progress=progress)

    def kinds(self, records: Sequence[dict], *, progress: bool = True) -> list[str | None]:
        """`rubric_kind` of each record's grade, in order (None where grading failed)."""
        return [rubric_kind(g) for g in self.grade_many(records, progress=progress)]


def parse_rubric(raw: str) -> dict:
    """`{"recovery": 0-10, "kind": one of RUBRIC_KINDS}` from a reply, or `{"error": why}`."""
    found = re.search(r"\{.*\}", raw or "", re.S)
    try:
        data = json.loads(found.group(0)) if found else None
        score, kind = int(data["recovery"]), str(data["kind"]).strip().lower()
    except (ValueError, TypeError, KeyError):
        return {"error": f"unreadable rubric reply: {(raw or '')[:200]!r}"}
    if not 0 <= score <= 10 or kind not in RUBRIC_KINDS:
        return {"error": f"rubric reply out of range: recovery {score}, kind {kind!r}"}
    return {"recovery": score, "kind": kind}
