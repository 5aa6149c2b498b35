"""Scoring a judge against the labelled set: per item, per phrase family, per class.

Definitions (the issue that asked for the learned judge states the targets in these terms):
- *count right*: the judge finds exactly the true number of attempts;
- *direction right* (multi-attempt truths only): the judge also splits the response, and its
  "last beats first" call equals the truth's; a missed split counts as wrong;
- *kept single* (single-attempt truths only): the judge returns exactly one attempt.
Intervals are Wilson 95% intervals, which stay inside [0, 1] near 100%.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from esr_utils.judging.evalset import EvalItem
from esr_utils.judging.types import Verdict
from esr_utils.metrics import wilson_interval

__all__ = ["item_rows", "accuracy_table", "score_means", "TARGETS"]

# the targets, checked on held-out families
TARGETS = {"count": 0.95, "direction": 0.95, "kept_single": 0.98, "on_topic_first_min": 70.0,
           "off_topic_first_max": 30.0, "degenerate_max": 20.0}


def item_rows(items: Sequence[EvalItem], verdicts: Sequence[Verdict]) -> list[dict]:
    """One row per item: truth, judgement and whether count and direction are right."""
    rows = []
    for item, v in zip(items, verdicts, strict=True):
        scores = v.scores if v.ok else []
        n = len(scores)
        multi = item.n_attempts > 1
        rows.append(dict(
            kind=item.kind, family=item.family, true_n=item.n_attempts, judged_n=n,
            error=v.error, true_first=item.true_scores[0], true_last=item.true_scores[-1],
            first=scores[0] if scores else np.nan, last=scores[-1] if scores else np.nan,
            mean_score=float(np.mean(scores)) if scores else np.nan,
            count_ok=bool(v.ok and n == item.n_attempts),
            direction_ok=(bool(n > 1 and (scores[-1] > scores[0]) == item.improves)
                          if multi else None),
            kept_single=bool(n == 1) if not multi else None,
        ))
    return rows


def accuracy_table(rows: Sequence[dict], by: str) -> list[dict]:
    """Count, direction and kept-single accuracy with Wilson intervals, grouped by `by`."""
    out = []
    for key in dict.fromkeys(r[by] for r in rows):
        group = [r for r in rows if r[by] == key]
        entry = {by: key, "items": len(group)}
        for name in ("count_ok", "direction_ok", "kept_single"):
            vals = [r[name] for r in group if r[name] is not None]
            k, n = int(sum(vals)), len(vals)
            lo, hi = wilson_interval(k, n)
            entry[name.replace("_ok", "")] = k / n if n else np.nan
            entry[f"{name.replace('_ok', '')}_n"] = n
            entry[f"{name.replace('_ok', '')}_ci"] = (lo, hi)
        out.append(entry)
    return out


def score_means(rows: Sequence[dict]) -> dict:
    """The score targets: mean first score of on-topic and off-topic answers, mean score of
    degenerate text."""
    def mean(kind, col):
        vals = [r[col] for r in rows if r["kind"] == kind and not np.isnan(r[col])]
        return float(np.mean(vals)) if vals else np.nan

    return {"on_topic_first": mean("on_topic", "first"),
            "off_topic_first": mean("off_topic", "first"),
            "degenerate_mean": mean("degenerate", "mean_score")}
