"""Conditions planned first and generated together: fuller batches, each condition stored apart.

A chapter often runs several small conditions on one model (chapter 3's prefill cuts, chapter
5's meta-prompts, chapter 2's ESR run, baseline and sweep). Generated one by one, each fills a
batch of a few dozen rows, where the CPU does far fewer trials per minute than at 128 rows
(`make bench`'s batch sweep). A `PlannedTrials` holds one condition's trials without running
them; `judged_plans` generates every plan sharing a sampling setting in one call, then stores
and judges each plan in its own folder, exactly as `judged_trials` would have one at a time.
A trial's text does not depend on which other trials share its batch, beyond floating-point
rounding (`esr_utils.batching`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.judging.regrade import judge_stored
from esr_utils.models import LoadedModel
from esr_utils.results import ResultsStore, RoutedStore

__all__ = ["PlannedTrials", "judged_plans", "judged_trials"]

_JUDGE_CHUNK = 64


@dataclass(frozen=True)
class PlannedTrials:
    """One condition, not yet run: its trials, what the judge is told each was steered toward
    (`labels`, "" for none), its results folder, sampling (None: the model's) and batch size."""

    trials: tuple[Trial, ...]
    labels: tuple[str, ...]
    directory: Path
    sampling: Sampling | None = None
    batch_size: int | str = 8

    def __post_init__(self):
        object.__setattr__(self, "trials", tuple(self.trials))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "directory", Path(self.directory))
        if len(self.labels) != len(self.trials):
            raise ValueError(f"{len(self.labels)} labels for {len(self.trials)} trials")


def judged_plans(model: LoadedModel, plans: Sequence[PlannedTrials], *, judge, sae=None,
                 compute: str = "allow", progress: bool = True) -> list[list[dict]]:
    """Each plan's generated and judged records, in its order; resumable like `judged_trials`.

    Plans with the same sampling and batch size are generated in one `generate_trials` call
    (plans steered for their first k tokens only in a call of their own); each record is
    stored in the folder of every plan that holds its trial (`<directory>/trials.jsonl`), and
    each plan is judged into `<directory>/verdicts.jsonl`.
    """
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        sampling = plan.sampling or Sampling.for_model(model.spec)
        # a batch holding a row steered for its first k tokens only is generated in rounds,
        # each reading the whole context again (`batching.run_batches`): such plans share
        # batches only with each other, so that other rows do not pay for the extra reads
        early_stop = any(t.steering.steer_tokens is not None for t in plan.trials)
        if plan.trials:
            groups.setdefault((sampling, plan.batch_size, early_stop), []).append(i)
    generated: list[list[dict]] = [[] for _ in plans]
    layer = model.spec.steering_layer  # the layer generate_trials steers at by default
    for (sampling, batch_size, _), members in groups.items():
        if len(members) == 1:
            store = ResultsStore(plans[members[0]].directory, "trials")
        else:  # one call, each record routed to its plan's folder by what it asks for
            store = RoutedStore([
                (ResultsStore(plans[i].directory, "trials"),
                 {t.content_id(model.spec.name, layer, sampling) for t in plans[i].trials})
                for i in members])
        records = generate_trials(model, [t for i in members for t in plans[i].trials],
                                  sae=sae, sampling=sampling, batch_size=batch_size,
                                  store=store, compute=compute, progress=progress)
        start = 0
        for i in members:
            generated[i] = records[start:start + len(plans[i].trials)]
            start += len(plans[i].trials)
    # verdicts are keyed by the trial and by the judge's name and code, so a judge change
    # grades again instead of reusing stale verdicts
    return [judge_stored(judge, [{**r, "label": label} for r, label in zip(records, p.labels)],
                         p.directory, compute=compute, chunk=_JUDGE_CHUNK) if p.trials else []
            for p, records in zip(plans, generated)]


def judged_trials(model: LoadedModel, trials: Sequence[Trial], labels: Sequence[str], *, judge,
                  directory: str | Path, sae=None, sampling: Sampling | None = None,
                  batch_size: int | str = 8, compute: str = "allow", progress: bool = True
                  ) -> list[dict]:
    """Generated and judged records for `trials`, in order; both halves stored and resumable.

    Generations go to `<directory>/trials.jsonl`, verdicts to `<directory>/verdicts.jsonl`.
    `labels[i]` is what the judge is told trial i was steered toward ("" for none).
    """
    if not trials:  # as generate_trials says, before any folder is made
        raise ValueError("no trials to generate: the prompt or trial list is empty")
    plan = PlannedTrials(trials, labels, directory, sampling, batch_size)
    return judged_plans(model, [plan], judge=judge, sae=sae, compute=compute,
                        progress=progress)[0]
