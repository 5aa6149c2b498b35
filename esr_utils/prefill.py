"""The prefill control (chapter 3): a steered answer's opening, continued with steering off or on.

For each stored steered episode and each cut point (N characters, a share of the answer, or
just before its own restart: `cut_text`), the answer's opening (cut back to the last space, so
the continuation starts a new word) is forced into the assistant turn, as the model's own tokens
where the record kept them (`token_prefix`), and the model continues from it with the same
latent recorded at boost 0 ("unsteered") or at its stored boost ("steered"). The judge grades
prefix plus continuation.

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
from esr_utils.plans import PlannedTrials, judged_plans
from esr_utils.protocol import plan_replay
from esr_utils.threshold_search import trial_seed

__all__ = ["cut_prefix", "cut_text", "RESTART_CUT", "token_prefix", "restart_position",
           "PrefillEpisodes", "sample_episodes", "prefill_episodes", "plan_continuation",
           "plan_prefill", "prefill_condition", "rate_rows", "METRICS"]

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


def token_prefix(tokenizer, tokens: Sequence[int], text: str) -> tuple[int, ...]:
    """The longest start of `tokens` whose decoded text is a start of `text`: the model's own
    tokens for a prefix cut from its own answer, never re-tokenized. Decoded lengths grow with
    the count, so a binary search finds the candidate and a short walk back makes it exact."""
    def decoded(n):
        return tokenizer.decode(list(tokens[:n]), skip_special_tokens=True)

    lo, hi = 0, len(tokens)
    while lo < hi:  # the largest n whose text is no longer than `text`
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(decoded(mid)) <= len(text) else (lo, mid - 1)
    while lo and not text.startswith(decoded(lo)):
        lo -= 1
    return tuple(tokens[:lo])


@dataclass
class PrefillEpisodes:
    """One cut point's episodes: the stored steered records kept, their prefixes (text, and the
    model's own token ids where the record kept them), what was left out and why."""

    cut: int | str
    records: list[dict]
    prefixes: list[str]
    too_short: int
    restarted_in_prefix: int
    unplaced: int
    prefix_tokens: list[tuple[int, ...] | None] | None = None

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def openings(self) -> list:
        """What each episode's answer is forced to start with: its exact token ids where
        known, else its prefix text (tokenized again)."""
        ids = self.prefix_tokens or [None] * self.n
        return [t if t else text for text, t in zip(self.prefixes, ids)]


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


RESTART_CUT = "restart"


def cut_text(record: dict, cut: int | str) -> str | None:
    """The opening of `record`'s answer for one cut point: `cut` characters (an int), a share of
    its own length ("50%"), or everything before its first restart ("restart": None without
    one). Character cuts go back to the last space (`cut_prefix`)."""
    text = record["response"]
    if cut == RESTART_CUT:
        at = restart_position(record)
        return text[:at].rstrip() or None if at else None
    if isinstance(cut, str) and cut.endswith("%"):
        share = float(cut[:-1]) / 100
        if not 0 < share < 1:
            raise ValueError(f"a share cut must lie strictly between 0% and 100%, got {cut!r}")
        return cut_prefix(text, max(1, round(share * len(text)))) if len(text) > 1 else None
    if isinstance(cut, bool) or not isinstance(cut, int):
        raise ValueError(f"a cut is a number of characters, a share like '50%' or "
                         f"{RESTART_CUT!r}, got {cut!r}")
    return cut_prefix(text, cut)


def prefill_episodes(records: Sequence[dict], cut: int | str, tokenizer=None) -> PrefillEpisodes:
    """The episodes usable at `cut` (see `cut_text`), with each one's prefix; with the model's
    `tokenizer`, also the prefix as the answer's own tokens (records that kept them).

    At the "restart" cut only answers with a restart are kept; the others count as too short.
    """
    kept, prefixes, short, restarted, unplaced = [], [], 0, 0, 0
    for r in records:
        at = restart_position(r)
        if at == -1:
            unplaced += 1
            continue
        prefix = cut_text(r, cut)
        if prefix is None:
            short += 1
            continue
        if cut != RESTART_CUT and at is not None and at < len(prefix):
            restarted += 1
            continue
        kept.append(r)
        prefixes.append(prefix)
    ids = None
    if tokenizer is not None:
        ids = [token_prefix(tokenizer, r["tokens"], p) if r.get("tokens") and
               not r.get("assistant_prefix") else None for r, p in zip(kept, prefixes)]
        # the forced text is what the exact tokens decode to (a start of the cut)
        prefixes = [tokenizer.decode(list(t), skip_special_tokens=True) if t else p
                    for p, t in zip(prefixes, ids)]
    return PrefillEpisodes(cut, kept, prefixes, short, restarted, unplaced, ids)


def plan_continuation(run: EsrRun, episodes: PrefillEpisodes, prefixes: Sequence[str], *,
                      boost_scale: float, directory: str | Path,
                      max_new_tokens: int) -> PlannedTrials:
    """The episodes replayed from forced answer openings `prefixes` (one per episode), at the
    stored seeds and sampling but `max_new_tokens` continuation tokens, boosts times
    `boost_scale`, planned: the shared step of the prefill and on-topic-prefix controls."""
    if not episodes.records:
        return PlannedTrials((), (), directory)
    sampling = Sampling.from_record(episodes.records[0], max_new_tokens=max_new_tokens)
    subset = replace(run, records={"steered": list(episodes.records)})
    return plan_replay(subset, directory=directory, assistant_prefix=list(prefixes),
                       boost_scale=boost_scale, sampling=sampling)


def plan_prefill(run: EsrRun, episodes: PrefillEpisodes, *, steered: bool,
                 directory: str | Path, max_new_tokens: int) -> PlannedTrials:
    """The episodes continued from their prefixes, steering off (boost 0, latent kept) or on (the
    stored boost), at the stored seeds and sampling but `max_new_tokens` continuation tokens,
    planned (run it with `plans.judged_plans`, alone or with other conditions)."""
    return plan_continuation(run, episodes, episodes.openings,
                             boost_scale=1.0 if steered else 0.0, directory=directory,
                             max_new_tokens=max_new_tokens)


def prefill_condition(run: EsrRun, episodes: PrefillEpisodes, *, steered: bool, model, sae,
                      judge, directory: str | Path, max_new_tokens: int,
                      compute: str = "allow", progress: bool = True) -> list[dict]:
    """`plan_prefill`, generated and judged on its own."""
    plan = plan_prefill(run, episodes, steered=steered, directory=directory,
                        max_new_tokens=max_new_tokens)
    return judged_plans(model, [plan], judge=judge, sae=sae, compute=compute,
                        progress=progress)[0]


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
