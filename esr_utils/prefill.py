"""The prefill control (chapter 3): a steered answer's opening, continued with steering off or on.

For each stored steered episode and each cut point N (characters), the answer's first N
characters (cut back to the last space, so the continuation starts a new word) are forced into
the assistant turn, and the model continues from them with the same latent recorded at boost 0
("unsteered") or at its stored boost ("steered"). The judge grades prefix plus continuation.

An episode whose stored answer is no longer than its cut has nothing left to continue, and one
whose stored answer already restarted inside the prefix would count an old correction as new:
both are left out of that cut point and counted (as is one whose restart cannot be placed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from esr_utils.esr_run import EsrRun
from esr_utils.generation import Sampling
from esr_utils.metrics import summarize, wilson_interval
from esr_utils.protocol import replay
from esr_utils.threshold_search import trial_seed

__all__ = ["cut_prefix", "restart_position", "PrefillEpisodes", "sample_episodes",
           "prefill_episodes", "continue_episodes", "prefill_condition", "rate_rows", "METRICS"]

# (summary key, what it measures) as reported per cut point
METRICS = (("multi_attempt_rate", "self-correction"),
           ("improvement_rate", "improved | corrected"),
           ("esr_rate", "ESR"))


def cut_prefix(text: str, n_chars: int) -> str | None:
    """`text`'s first `n_chars` characters, cut back to the last whitespace; None when `text` is
    not longer than that (nothing left to continue).

    The cut falls before a space so that re-tokenising the prefix gives the same tokens the
    model wrote (its tokenizer starts words with their leading space); without a space in the
    second half of the window it cuts at `n_chars` exactly.

    >>> cut_prefix("The cat sat on the mat.", 10)
    'The cat'
    >>> cut_prefix("Short.", 10) is None
    True
    """
    if n_chars < 1:
        raise ValueError(f"a cut needs at least 1 character, got {n_chars}")
    if len(text) <= n_chars:
        return None
    space = max(text.rfind(" ", 0, n_chars + 1), text.rfind("\n", 0, n_chars + 1))
    end = space if space >= n_chars // 2 else n_chars
    prefix = text[:end].rstrip()
    return prefix or None


def restart_position(record: dict) -> int | None:
    """Character offset in `record["response"]` where the judge's first attempt ends, i.e. where
    a restart begins (its "wait, ..." sentence belongs to no attempt); None for a single attempt
    (or none); -1 when the attempt's text cannot be found in the response (an LLM judge that
    paraphrased): such an episode cannot be placed and is left out."""
    attempts = record.get("attempts") or []
    if len(attempts) < 2:
        return None
    first = attempts[0]["text"].strip()
    start = record["response"].find(first) if first else -1
    return -1 if start < 0 else start + len(first)


@dataclass
class PrefillEpisodes:
    """One cut point's episodes: the stored steered records kept, their prefixes, what was left
    out and why."""

    n_chars: int
    records: list[dict]
    prefixes: list[str]
    too_short: int
    restarted_in_prefix: int
    unplaced: int

    @property
    def n(self) -> int:
        return len(self.records)


def sample_episodes(records: Sequence[dict], n: int, seed: int) -> list[dict]:
    """`n` of `records` drawn without replacement by `seed`, kept in stored order (all when
    there are no more than `n`): a budget's subset that does not favour the first latents."""
    if n < 1:
        raise ValueError(f"N_EPISODES must be ≥ 1, got {n}")
    if len(records) <= n:
        return list(records)
    chosen = np.random.default_rng(trial_seed(seed, "prefill-episodes")).choice(
        len(records), size=n, replace=False)
    return [records[i] for i in sorted(chosen)]


def prefill_episodes(records: Sequence[dict], n_chars: int) -> PrefillEpisodes:
    """The episodes usable at cut `n_chars`, with each one's prefix."""
    kept, prefixes, short, restarted, unplaced = [], [], 0, 0, 0
    for r in records:
        prefix = cut_prefix(r["response"], n_chars)
        if prefix is None:
            short += 1
            continue
        at = restart_position(r)
        if at == -1:
            unplaced += 1
            continue
        if at is not None and at < len(prefix):
            restarted += 1
            continue
        kept.append(r)
        prefixes.append(prefix)
    return PrefillEpisodes(n_chars, kept, prefixes, short, restarted, unplaced)


def continue_episodes(run: EsrRun, episodes: PrefillEpisodes, prefixes: Sequence[str], *,
                      boost_scale: float, model, sae, judge, directory: str | Path,
                      max_new_tokens: int, compute: str = "allow",
                      progress: bool = True) -> list[dict]:
    """The episodes replayed from forced answer openings `prefixes` (one per episode), at the
    stored seeds and sampling but `max_new_tokens` continuation tokens, boosts times
    `boost_scale`: the shared step of the prefill and on-topic-prefix controls."""
    if not episodes.records:
        return []
    sampling = Sampling.from_record(episodes.records[0], max_new_tokens=max_new_tokens)
    subset = replace(run, records={"steered": list(episodes.records)})
    return replay(subset, model=model, sae=sae, judge=judge, directory=directory,
                  assistant_prefix=list(prefixes), boost_scale=boost_scale, sampling=sampling,
                  compute=compute, progress=progress)


def prefill_condition(run: EsrRun, episodes: PrefillEpisodes, *, steered: bool, model, sae,
                      judge, directory: str | Path, max_new_tokens: int,
                      compute: str = "allow", progress: bool = True) -> list[dict]:
    """The episodes continued from their prefixes, steering off (boost 0, latent kept) or on (the
    stored boost), at the stored seeds and sampling but `max_new_tokens` continuation tokens."""
    return continue_episodes(run, episodes, episodes.prefixes,
                             boost_scale=1.0 if steered else 0.0, model=model, sae=sae,
                             judge=judge, directory=directory, max_new_tokens=max_new_tokens,
                             compute=compute, progress=progress)


def rate_rows(records: Sequence[dict], **labels) -> list[dict]:
    """One row per metric of `METRICS`: k, n, rate and its Wilson 95% interval, plus `labels`."""
    summary = summarize(records)
    rows = []
    for key, name in METRICS:
        r = summary[key]
        lo, hi = wilson_interval(r.k, r.n)
        rows.append({**labels, "metric": name, "k": r.k, "n": r.n, "rate": r.p, "lo": lo,
                     "hi": hi})
    return rows
