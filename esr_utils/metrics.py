"""ESR metrics (the paper's §2.1, Fig. 2): per trial, per condition with 95% intervals, and judge
agreement.

Denominators follow the paper: trials with a trial error, a judge error or no attempt are
excluded and counted; degraded outputs stay in unless asked otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["Z", "Rate", "Mean", "wald_interval", "wilson_interval", "wilson_text", "rate",
           "rate_difference", "mean_ci", "is_degraded", "trial_metrics", "summarize",
           "relative_change", "relative_reduction", "ratio", "cross_judge_agreement"]

Z = 1.96  # the paper's 95% intervals are ±1.96 standard errors


def wald_interval(p: float, n: int) -> tuple[float, float]:
    """p ± 1.96·sqrt(p(1−p)/n), clipped to [0, 1].

    >>> lo, hi = wald_interval(0.074, 4877)   # the 70B's multi-attempt rate
    >>> round(100 * lo, 1), round(100 * hi, 1)
    (6.7, 8.1)
    """
    if n <= 0:
        return (math.nan, math.nan)
    half = Z * math.sqrt(p * (1 - p) / n)
    return (max(0.0, p - half), min(1.0, p + half))


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval for k of n: unlike Wald's, not degenerate at 0 or n, so it can say
    whether a small rate excludes 0.

    >>> [round(x, 3) for x in wilson_interval(0, 38)]
    [0.0, 0.092]
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def wilson_text(k: int, n: int) -> str:
    """k of n as the tables print it: the share, its Wilson 95% interval and the counts."""
    if n <= 0:
        return f"– ({k}/{n})"
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] ({k}/{n})"


@dataclass(frozen=True)
class Rate:
    """k of n, as a fraction with its Wald interval; `pct` gives percentages."""

    k: int
    n: int

    @property
    def p(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return wald_interval(self.p, self.n)

    @property
    def pct(self) -> float:
        return 100 * self.p

    def __str__(self) -> str:
        lo, hi = self.ci
        return f"{self.pct:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] ({self.k}/{self.n})"


def rate_difference(a: Rate, b: Rate) -> tuple[float, float, float]:
    """b − a with Newcombe's hybrid score 95% interval (independent samples), as fractions.

    Each arm's Wilson interval gives the distances its rate may move down and up; the
    difference's bounds combine them in quadrature (Newcombe 1998, method 10). Unlike the Wald
    interval it does not collapse to a point when an arm is at 0 or n (e.g. 0/1 vs 1/1, where
    Wald says [+1, +1]), and it stays inside [−1, 1].

    >>> d, lo, hi = rate_difference(rate(2, 40), rate(12, 40)); round(d, 2), lo > 0
    (0.25, True)
    >>> [round(x, 2) for x in rate_difference(rate(0, 1), rate(1, 1))]
    [1.0, -0.12, 1.0]
    """
    if not (a.n and b.n):
        return (math.nan, math.nan, math.nan)
    a_lo, a_hi = wilson_interval(a.k, a.n)
    b_lo, b_hi = wilson_interval(b.k, b.n)
    d = b.p - a.p
    lower = d - math.hypot(b.p - b_lo, a_hi - a.p)
    upper = d + math.hypot(b_hi - b.p, a.p - a_lo)
    return (d, max(-1.0, lower), min(1.0, upper))


def rate(k: int, n: int) -> Rate:
    """A `Rate` for k successes out of n trials.

    >>> str(rate(185, 4877))   # the 70B's ESR rate
    '3.8% [3.3, 4.3] (185/4877)'
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 ≤ k ≤ n, got k={k}, n={n}")
    return Rate(int(k), int(n))


@dataclass(frozen=True)
class Mean:
    """A mean with its SEM (std with ddof=1 over sqrt n) and mean ± 1.96·SEM."""

    mean: float
    sem: float
    n: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.mean - Z * self.sem, self.mean + Z * self.sem)

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {Z * self.sem:.1f} (n={self.n})"


def mean_ci(values: Sequence[float]) -> Mean:
    """Mean, SEM and interval of the non-None values.

    >>> m = mean_ci([1.0, 2.0, 3.0]); (m.mean, round(m.sem, 3))
    (2.0, 0.577)
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) == 0:
        return Mean(math.nan, math.nan, 0)
    sem = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return Mean(float(x.mean()), sem, len(x))


def is_degraded(text: str, run: int = 5, min_len: int = 2) -> bool:
    """At least `run` identical whitespace-separated words in a row, each ≥ `min_len` chars.

    >>> is_degraded("the cat cat cat cat cat sat"), is_degraded("a a a a a a")
    (True, False)
    """
    count, prev = 0, None
    for word in (text or "").split():
        count = count + 1 if word == prev else 1
        prev = word
        if count >= run and len(word) >= min_len:
            return True
    return False


def _scores(x) -> list[float] | None:
    """Scores from a Verdict, a record with `attempts`, or a list; None for an error."""
    if x is None:
        return None
    if hasattr(x, "ok"):
        return x.scores if x.ok else None
    if isinstance(x, Mapping):
        if x.get("judge_error") or x.get("attempts") is None:
            return None
        return [float(a["score"]) for a in x["attempts"] if a.get("score") is not None]
    return [float(s) for s in x]


def trial_metrics(record: Mapping) -> dict:
    """Per-trial metrics from a record with `attempts` (and optionally `error`, `judge_error`).

    `excluded` is None for a valid trial, else "trial_error", "judge_error" or "no_attempt".

    >>> m = trial_metrics({"response": "x", "attempts": [{"score": 10}, {"score": 80}]})
    >>> m["multi_attempt"], m["esr"], m["score_delta"]
    (True, True, 70.0)
    """
    out = {"excluded": None, "n_attempts": 0, "first_score": None, "last_score": None,
           "multi_attempt": False, "improved": False, "esr": False, "score_delta": None,
           "degraded": is_degraded(record.get("response", ""))}
    if record.get("error"):
        return {**out, "excluded": "trial_error"}
    scores = _scores(record)
    if scores is None:
        return {**out, "excluded": "judge_error"}
    if not scores:
        return {**out, "excluded": "no_attempt"}
    multi = len(scores) > 1
    improved = scores[-1] > scores[0]  # strict; only the first and the last attempt count
    return {**out, "n_attempts": len(scores), "first_score": scores[0], "last_score": scores[-1],
            "multi_attempt": multi, "improved": improved, "esr": multi and improved,
            "score_delta": scores[-1] - scores[0] if multi else None}


def summarize(records: Sequence[Mapping], *, exclude_degraded: bool = False) -> dict:
    """Per-condition metrics: rates with Wald intervals, means with SEM intervals.

    Keys: `n_records`, `n_valid`, `excluded` (reason → count), `n_degraded`,
    `multi_attempt_rate`, `esr_rate`, `improvement_rate` (ESR among multi-attempt trials),
    `mean_first_score`, `mean_score_improvement` (conditional: multi-attempt trials only).

    >>> s = summarize([{"attempts": [{"score": 0}, {"score": 90}]}, {"attempts": [{"score": 80}]},
    ...                {"attempts": None, "judge_error": "timeout"}])
    >>> str(s["esr_rate"]), s["excluded"]["judge_error"]
    ('50.0% [0.0, 100.0] (1/2)', 1)
    """
    trials = [trial_metrics(r) for r in records]
    excluded = {"trial_error": 0, "judge_error": 0, "no_attempt": 0, "degraded": 0}
    valid = []
    for t in trials:
        if t["excluded"]:
            excluded[t["excluded"]] += 1
        elif exclude_degraded and t["degraded"]:
            excluded["degraded"] += 1
        else:
            valid.append(t)
    n = len(valid)
    multi = [t for t in valid if t["multi_attempt"]]
    n_esr = sum(t["esr"] for t in valid)
    return {
        "n_records": len(trials),
        "n_valid": n,
        "excluded": excluded,
        "n_degraded": sum(t["degraded"] for t in valid),
        "multi_attempt_rate": rate(len(multi), n),
        "esr_rate": rate(n_esr, n),
        "improvement_rate": rate(n_esr, len(multi)),
        "mean_first_score": mean_ci([t["first_score"] for t in valid]),
        "mean_score_improvement": mean_ci([t["score_delta"] for t in multi]),
    }


def _value(x) -> float:
    return x.p if isinstance(x, Rate) else x.mean if isinstance(x, Mean) else float(x)


def relative_change(baseline, condition) -> float:
    """(condition − baseline) / baseline, on unrounded values.

    >>> round(relative_change(0.074, 0.055), 3)
    -0.257
    """
    return (_value(condition) - _value(baseline)) / _value(baseline)


def relative_reduction(baseline, condition) -> float:
    """(baseline − condition) / baseline: the paper's "−25%" for the OTD ablation.

    >>> round(relative_reduction(3.8, 2.8), 2)
    0.26
    """
    return -relative_change(baseline, condition)


def ratio(baseline, condition) -> float:
    """condition / baseline: the paper's "4.3×" for the meta-prompt.

    >>> round(ratio(7.4, 31.7), 1)
    4.3
    """
    return _value(condition) / _value(baseline)


def cross_judge_agreement(grades: Mapping[str, Sequence]) -> list[dict]:
    """Pairwise agreement between judges that graded the same responses, in the same order.

    `grades` maps a judge name to its per-response Verdicts, records or score lists. Per pair:
    `n_both` (both graded, at least one attempt each), `count_agreement` (same number of
    attempts), `multi_agreement` (same multi-attempt call), `n_both_multi` and
    `direction_agreement` (same "last beats first" call, among responses both call
    multi-attempt, as in the paper's cross-judge check), and `first_score_r` (Pearson).

    >>> (row,) = cross_judge_agreement({"a": [[0, 90], [70]], "b": [[10, 80], [60, 20]]})
    >>> row["count_agreement"], row["direction_agreement"]
    (0.5, 1.0)
    """
    names = list(grades)
    scored = {name: [_scores(x) for x in grades[name]] for name in names}
    lengths = {len(v) for v in scored.values()}
    if len(lengths) > 1:
        raise ValueError(f"judges graded different numbers of responses: "
                         f"{ {k: len(v) for k, v in scored.items()} }")
    rows = []
    for a, b in combinations(names, 2):
        pairs = [(x, y) for x, y in zip(scored[a], scored[b]) if x and y]
        both_multi = [(x, y) for x, y in pairs if len(x) > 1 and len(y) > 1]
        firsts = np.array([(x[0], y[0]) for x, y in pairs], dtype=float).reshape(-1, 2)
        r = (float(np.corrcoef(firsts.T)[0, 1])
             if len(pairs) > 2 and firsts.std(axis=0).min() > 0 else math.nan)
        rows.append({
            "judge_a": a, "judge_b": b, "n_both": len(pairs),
            "count_agreement": float(np.mean([len(x) == len(y) for x, y in pairs]))
            if pairs else math.nan,
            "multi_agreement": float(np.mean([(len(x) > 1) == (len(y) > 1) for x, y in pairs]))
            if pairs else math.nan,
            "n_both_multi": len(both_multi),
            "direction_agreement": float(np.mean([(x[-1] > x[0]) == (y[-1] > y[0])
                                                  for x, y in both_multi]))
            if both_multi else math.nan,
            "first_score_r": r,
        })
    return rows
