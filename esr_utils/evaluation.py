"""Generate trials and judge them, both stored and resumable: the unit every experiment repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.judging.regrade import judge_records
from esr_utils.models import LoadedModel
from esr_utils.results import ResultsStore

__all__ = ["judged_trials"]

_JUDGE_CHUNK = 64


def judged_trials(
    model: LoadedModel,
    trials: Sequence[Trial],
    labels: Sequence[str],
    *,
    judge,
    directory: str | Path,
    sae=None,
    sampling: Sampling | None = None,
    batch_size: int = 8,
    compute: str = "allow",
    progress: bool = True,
) -> list[dict]:
    """Generated and judged records for `trials`, in order.

    Generations go to `<directory>/trials.jsonl`, verdicts to `<directory>/judged.jsonl`; a rerun
    only does what is missing from either. `labels[i]` is what the judge is told trial i was
    steered toward (the paper passes the latent's label; "" for none).
    """
    if len(labels) != len(trials):
        raise ValueError(f"{len(labels)} labels for {len(trials)} trials")
    records = generate_trials(model, trials, sae=sae, sampling=sampling, batch_size=batch_size,
                              store=ResultsStore(directory, "trials"), compute=compute,
                              progress=progress)
    judged_store = ResultsStore(directory, "judged")
    judged = {r["trial_id"]: r for r in judged_store.records()}
    todo = [{**r, "label": label} for r, label in zip(records, labels)
            if r["trial_id"] not in judged]
    if todo and compute == "cache-only":
        raise RuntimeError(f"COMPUTE='cache-only' but {len(todo)} trials are not judged yet in "
                           f"{judged_store.path}")
    for start in range(0, len(todo), _JUDGE_CHUNK):
        chunk = judge_records(judge, todo[start:start + _JUDGE_CHUNK])
        judged_store.append(chunk)
        judged.update((r["trial_id"], r) for r in chunk)
    return [judged[r["trial_id"]] for r in records]
