"""What a meta-prompt changes, measured against the baseline replayed with the same seeds.

The paper's reading (§3.3): a meta-prompt raises the *propensity* to attempt a correction (the
multi-attempt rate) but not the *success* of attempts (the improvement rate, ESR among
multi-attempt trials, and the conditional mean score improvement).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from scipy.stats import binomtest

from esr_utils.meta_prompts import BASELINE, VARIANTS
from esr_utils.metrics import Mean, Rate, Z, rate_difference, summarize, trial_metrics

__all__ = ["METRICS", "mean_difference", "paired_counts", "mcnemar_p", "reading_test",
           "most_effective", "doubling_power", "table_rows"]

# summarize() key -> what the chapter calls it
METRICS = {"mean_first_score": "first-attempt score", "multi_attempt_rate": "multi-attempt",
           "esr_rate": "ESR", "improvement_rate": "improvement rate (ESR / multi-attempt)",
           "mean_score_improvement": "conditional mean score improvement"}
_Z80 = 0.8416  # one-sided z of 80% power


def mean_difference(a: Mean, b: Mean) -> tuple[float, float, float]:
    """b − a with the 95% interval ±1.96·sqrt(SEM_a² + SEM_b²) (independent samples, as the
    paper's code draws its first-score differences); NaN where either side has n < 2.

    >>> d, lo, hi = mean_difference(Mean(10.0, 1.0, 9), Mean(13.0, 1.0, 9)); d, round(hi - d, 2)
    (3.0, 2.77)
    """
    if a.n < 2 or b.n < 2:
        return (math.nan, math.nan, math.nan)
    d = b.mean - a.mean
    half = Z * math.sqrt(a.sem ** 2 + b.sem ** 2)
    return (d, d - half, d + half)


def paired_counts(baseline: Sequence[Mapping], variant: Sequence[Mapping],
                  key: str = "multi_attempt") -> tuple[int, int]:
    """Discordant pairs (baseline only, variant only) of trials matched by position, both
    valid; the records must be the same trials (latent and seed) in the same order."""
    if len(baseline) != len(variant):
        raise ValueError(f"{len(baseline)} baseline and {len(variant)} variant records: "
                         "replay both from the same run with the same seeds")
    only_b = only_v = 0
    for rb, rv in zip(baseline, variant):
        if (rb.get("latent_id"), rb.get("seed")) != (rv.get("latent_id"), rv.get("seed")):
            raise ValueError("baseline and variant records are not the same trials in the same "
                             "order (latent and seed differ)")
        mb, mv = trial_metrics(rb), trial_metrics(rv)
        if mb["excluded"] or mv["excluded"]:
            continue
        only_b += mb[key] and not mv[key]
        only_v += mv[key] and not mb[key]
    return only_b, only_v


def mcnemar_p(only_baseline: int, only_variant: int) -> float:
    """Exact two-sided McNemar p-value: the discordant pairs against a fair coin (1.0 for
    none).

    >>> round(mcnemar_p(1, 9), 4)
    0.0215
    """
    n = only_baseline + only_variant
    return 1.0 if n == 0 else float(binomtest(only_variant, n, 0.5).pvalue)


def _direction(d: tuple[float, float, float]) -> str:
    _, lo, hi = d
    if math.isnan(lo):
        return "untestable"
    return "raised" if lo > 0 else "lowered" if hi < 0 else "no clear change"


def reading_test(baseline: Sequence[Mapping], variant: Sequence[Mapping]) -> dict:
    """The paper's reading for one variant against its baseline.

    Propensity: the multi-attempt rate difference (variant − baseline) with its Newcombe 95%
    interval (`metrics.rate_difference`, which treats the arms as independent: conservative for
    these matched trials), plus the exact McNemar test on the matched pairs. Success: the
    improvement rate difference (independent; its arms are different trials) and the
    conditional mean score improvement difference. Supported: propensity raised (interval above
    0) and the improvement rate's interval containing 0; contradicted: the attempt rate lowered,
    or the improvement rate's interval excluding 0.
    """
    sb, sv = summarize(baseline), summarize(variant)
    multi = rate_difference(sb["multi_attempt_rate"], sv["multi_attempt_rate"])
    success = rate_difference(sb["improvement_rate"], sv["improvement_rate"])
    msi = mean_difference(sb["mean_score_improvement"], sv["mean_score_improvement"])
    pairs = paired_counts(baseline, variant)
    propensity, effect = _direction(multi), _direction(success)
    if propensity == "lowered":
        verdict = "contradicted: the attempt rate fell"
    elif effect in ("raised", "lowered"):
        verdict = f"contradicted: the success of attempts {effect.split()[0]}"
    elif propensity != "raised":
        verdict = "inconclusive: the attempt rate did not clearly rise"
    elif effect == "untestable":
        verdict = "partly: attempts rose; success untestable (no multi-attempt trial in an arm)"
    else:
        verdict = "supported: attempts rose, success of attempts not clearly changed"
    return {"multi_attempt_diff": multi, "improvement_diff": success, "msi_diff": msi,
            "discordant": pairs, "mcnemar_p": mcnemar_p(*pairs), "propensity": propensity,
            "success": effect, "verdict": verdict}


def most_effective(conditions: Mapping[str, Sequence[Mapping]]) -> str:
    """The variant with the highest multi-attempt rate (ties: ESR rate, then the paper's order):
    the one most likely to make the model restart without steering too."""
    variants = [v for v in VARIANTS if v in conditions]
    if not variants:
        raise ValueError(f"no meta-prompt variant among {list(conditions)}")

    def score(v):
        s = summarize(conditions[v])
        return (s["multi_attempt_rate"].p, s["esr_rate"].p, -variants.index(v))
    return max(variants, key=score)


def doubling_power(p0: float, n_baseline: int, n_variant: int) -> dict:
    """Can n trials per arm tell a rate p0 from 2·p0? The expected half-width of the difference's
    95% interval, whether the doubling exceeds it with 80% power, and the n per arm needed.

    >>> d = doubling_power(0.15, 120, 120); d["detectable"], d["n_needed"]
    (True, 118)
    """
    if not 0 < p0 <= 0.5:
        return {"p0": p0, "half_width": math.nan, "detectable": False, "n_needed": None}
    p1 = 2 * p0
    var = p0 * (1 - p0) / n_baseline + p1 * (1 - p1) / n_variant
    need = (Z + _Z80) ** 2 * (p0 * (1 - p0) + p1 * (1 - p1)) / p0 ** 2
    return {"p0": p0, "half_width": Z * math.sqrt(var),
            "detectable": p0 >= (Z + _Z80) * math.sqrt(var), "n_needed": math.ceil(need)}


def _fmt(x) -> str:
    if isinstance(x, Rate):
        return str(x) if x.n else "– (0 trials)"
    if isinstance(x, Mean):
        if x.n < 2:
            return "–" if x.n == 0 else f"{x.mean:.1f} (n=1, no interval)"
        return f"{x.mean:.1f} [{x.ci[0]:.1f}, {x.ci[1]:.1f}] (n={x.n})"
    return str(x)


def table_rows(model: str, conditions: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """One row per condition (baseline first): n and the five metrics with 95% intervals."""
    rows = []
    for name in [BASELINE, *[v for v in conditions if v != BASELINE]]:
        s = summarize(conditions[name])
        rows.append({"model": model, "condition": name, "n valid": s["n_valid"],
                     **{label: _fmt(s[key]) for key, label in METRICS.items()}})
    return rows
