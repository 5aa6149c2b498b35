"""The on-topic-prefix control (chapter 3): our design for the paper's unpublished second control.

After a steered answer's off-topic opening, on-topic text is forced in, and the model continues
with the steering still on. If recent on-topic tokens were all a recovery needs, a continuation
after the model's own on-topic sentence would stay on topic as often as a genuine post-restart
continuation does. The forced text is, by condition:

- "restart": a restart sentence only;
- "own answer": the first sentence of the model's unsteered answer to the same prompt (chapter
  2's matched baseline: same prompt and seed), with no restart sentence;
- "both": the restart sentence, then that sentence.

Whether the continuation stays on topic is judged on the continuation alone (one attempt: its
first attempt's score), stored next to the generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from esr_utils.esr_run import EsrRun
from esr_utils.finetuning.examples import first_sentences
from esr_utils.judging.regrade import judge_stored
from esr_utils.plans import PlannedTrials, judged_plans
from esr_utils.prefill import PrefillEpisodes, plan_continuation

__all__ = ["RESTART_SENTENCE", "ONTOPIC_CONDITIONS", "ON_TOPIC_SCORE", "forced_openings",
           "ontopic_condition", "plan_ontopic", "with_continuation_scores",
           "continuation_scores", "genuine_recovery_scores", "stays_on_topic"]

# a plain restart sentence written for this control (not one of the organism's training
# wordings verbatim)
RESTART_SENTENCE = "Hold on, that is not what you asked. Let me answer your question."
ONTOPIC_CONDITIONS = ("restart", "own answer", "both")
# a continuation "stays on topic" when its score reaches this (0-100; midway on the judge's
# scale, well above the 30 the steering was calibrated to)
ON_TOPIC_SCORE = 50.0


def forced_openings(episodes: PrefillEpisodes, baseline: Sequence[dict], condition: str
                    ) -> list[str]:
    """Each episode's prefix followed by the condition's on-topic text.

    `baseline[i]` is the unsteered answer matched to `episodes.records[i]` (same prompt and
    seed); an answer without a first sentence of 20 characters falls back to its first 120
    characters, cut at a space.
    """
    if condition not in ONTOPIC_CONDITIONS:
        raise ValueError(f"condition must be one of {ONTOPIC_CONDITIONS}, got {condition!r}")
    if len(baseline) != episodes.n:
        raise ValueError(f"{len(baseline)} baseline answers for {episodes.n} episodes")
    out = []
    for prefix, record, answer in zip(episodes.prefixes, episodes.records, baseline):
        if (answer["prompt"], answer["seed"]) != (record["prompt"], record["seed"]):
            raise ValueError("baseline answers must be matched to the episodes (same prompt "
                             f"and seed): got {answer['prompt']!r} for {record['prompt']!r}")
        own = first_sentences(answer["response"], 1) or answer["response"][:120].rsplit(" ", 1)[0]
        parts = {"restart": [RESTART_SENTENCE], "own answer": [own.strip()],
                 "both": [RESTART_SENTENCE, own.strip()]}[condition]
        out.append(prefix + "\n\n" + " ".join(parts))
    return out


def ontopic_condition(run: EsrRun, episodes: PrefillEpisodes, openings: Sequence[str], *,
                      model, sae, judge, directory: str | Path, max_new_tokens: int,
                      compute: str = "allow", progress: bool = True) -> list[dict]:
    """The episodes continued, steering on at the stored boost, from `openings`; each record
    gains `continuation_score`, the judge's score of the continuation read on its own."""
    plan = plan_ontopic(run, episodes, openings, directory=directory,
                        max_new_tokens=max_new_tokens)
    records = judged_plans(model, [plan], judge=judge, sae=sae, compute=compute,
                           progress=progress)[0]
    return with_continuation_scores(records, judge, directory, compute=compute)


def plan_ontopic(run: EsrRun, episodes: PrefillEpisodes, openings: Sequence[str], *,
                 directory: str | Path, max_new_tokens: int) -> PlannedTrials:
    """`ontopic_condition`'s trials, planned; once run (`plans.judged_plans`), give its records
    to `with_continuation_scores`."""
    return plan_continuation(run, episodes, openings, boost_scale=1.0, directory=directory,
                             max_new_tokens=max_new_tokens)


def with_continuation_scores(records: Sequence[dict], judge, directory: str | Path, *,
                             compute: str = "allow") -> list[dict]:
    """The records, each with `continuation_score` (stored in `<directory>/continuation_only`)."""
    scores = continuation_scores(records, judge, Path(directory) / "continuation_only",
                                 compute=compute)
    return [{**r, "continuation_score": s} for r, s in zip(records, scores)]


def continuation_scores(records: Sequence[dict], judge, directory: str | Path, *,
                        compute: str = "allow") -> list[float | None]:
    """The judge's first-attempt score of each record's continuation alone (None: no score)."""
    items = [{"trial_id": f"{r['trial_id']}:continuation", "prompt": r["prompt"],
              "response": r["continuation"], "label": r.get("label", "")} for r in records]
    graded = judge_stored(judge, items, directory, compute=compute)
    return [g["attempts"][0]["score"] if g.get("attempts") else None for g in graded]


def genuine_recovery_scores(records: Sequence[dict]) -> list[float]:
    """The last attempt's score of every stored answer with more than one attempt: what a
    continuation after a genuine restart achieved."""
    return [float(r["attempts"][-1]["score"]) for r in records
            if len(r.get("attempts") or []) > 1]


def stays_on_topic(scores: Sequence[float | None], threshold: float = ON_TOPIC_SCORE
                   ) -> tuple[int, int]:
    """(k, n): how many of the scored continuations reach `threshold` (None: not scored).

    >>> stays_on_topic([80.0, 10.0, None, 50.0])
    (2, 3)
    """
    valid = [s for s in scores if s is not None]
    return sum(s >= threshold for s in valid), len(valid)
