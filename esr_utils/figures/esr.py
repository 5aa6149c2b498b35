"""Chapter 2: threshold search traces, the calibration check, ESR rates by model, the
no-steering baseline and the boost sweep."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from esr_utils.esr_run import EsrRun, first_scores_by_latent, sweep_summary
from esr_utils.metrics import Z, summarize, trial_metrics

__all__ = ["calibration_traces", "calibration_check", "esr_rates", "first_scores_no_steering",
           "boost_sweep"]


def calibration_traces(run: EsrRun, n: int = 8):
    """Chapter 2: boosts queried per bisection step (coloured by score), and the thresholds."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    points = None
    for k in run.latents[:n]:
        trace = pd.DataFrame(run.thresholds[k].trace)
        left.plot(trace.step, trace.boost, color="grey", lw=0.8, alpha=0.6)
        points = left.scatter(trace.step, trace.boost, c=trace.score * 100, cmap="RdYlGn",
                              vmin=0, vmax=100, s=18, zorder=3)
    fig.colorbar(points, ax=left, label="mean first-attempt score")
    left.set(xlabel="bisection step", ylabel="boost queried",
             title=f"{run.model}: {min(n, len(run.latents))} latents' searches")
    right.hist([run.threshold(k) for k in run.latents], bins=12)
    right.axvline(run.prior[0], color="black", ls="--", lw=1, label="prior mean")
    right.set(xlabel="threshold (boost)", ylabel="latents",
              title=f"thresholds of {len(run.latents)} latents")
    right.legend()
    return fig


def calibration_check(run: EsrRun, band: float = 15.0):
    """Chapter 2: per latent, the target against the mean first-attempt score its threshold got
    on fresh seeds (the ESR run), with 95% intervals and the ±`band` corridor."""
    target = run.settings.target_score
    achieved = first_scores_by_latent(run)
    order = sorted(run.latents, key=lambda k: achieved[k].mean)
    means = np.array([achieved[k].mean for k in order])
    half = np.array([Z * achieved[k].sem if achieved[k].n > 1 else 0.0 for k in order])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(order) + 2), 3.8))
    x = np.arange(len(order))
    ax.axhspan(target - band, target + band, color="grey", alpha=0.15, label=f"target ± {band:g}")
    ax.axhline(target, color="black", lw=1, label=f"target {target:g}")
    ax.errorbar(x, means, yerr=np.nan_to_num(half), fmt="o", capsize=3, label="achieved")
    ax.axhline(np.nanmean(means), color="C3", ls="--", lw=1,
               label=f"mean of latents {np.nanmean(means):.1f}")
    ax.set_xticks(x, [str(k) for k in order], rotation=90, fontsize=7)
    ax.set(xlabel="latent", ylabel="first-attempt score", ylim=(0, 100),
           title=f"{run.model}: target vs achieved at each threshold (fresh seeds)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def esr_rates(runs: Mapping[str, EsrRun]):
    """The paper's Fig. 2, our measurement: score change on restart; multi-attempt and ESR
    rates, steered vs no steering, with 95% intervals (▽: exact 95% bound where none seen)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    any_delta = False
    for name, run in runs.items():
        deltas = [d for d in (trial_metrics(r)["score_delta"] for r in run.records["steered"])
                  if d is not None]
        if deltas:
            any_delta = True
            axes[0].hist(deltas, bins=np.arange(-100, 105, 10), alpha=0.6, label=name)
    if not any_delta:
        axes[0].text(0.5, 0.5, "no multi-attempt answers", ha="center",
                     transform=axes[0].transAxes)
    axes[0].set(xlabel="last − first attempt score", ylabel="multi-attempt answers",
                title="score change on restart")
    x = np.arange(len(runs))
    for ax, key, title in ((axes[1], "multi_attempt_rate", "multi-attempt rate"),
                           (axes[2], "esr_rate", "ESR rate")):
        top = 1.0
        for offset, condition in ((-0.18, "steered"), (0.18, "baseline")):
            rates = [summarize(run.records[condition])[key] for run in runs.values()]
            values = np.array([100 * r.p for r in rates])
            errors = np.array([[100 * (r.p - r.ci[0]), 100 * (r.ci[1] - r.p)] for r in rates]).T
            ax.bar(x + offset, values, width=0.34, yerr=errors, capsize=3, label=condition)
            for xi, r in zip(x + offset, rates):
                bound = 300 / r.n if r.n and r.k == 0 else 100 * r.ci[1]  # rule of three
                ax.annotate(f"{r.k}/{r.n}", (xi, 100 * r.p), ha="center", va="bottom",
                            fontsize=8, xytext=(0, 2), textcoords="offset points")
                if r.k == 0 and r.n:
                    ax.plot([xi], [bound], marker="v", color="grey", ms=5)
                top = max(top, bound)
        ax.set_xticks(x, list(runs), rotation=15)
        ax.set(ylim=(0, 1.3 * top), ylabel="% of valid trials", title=title)
        ax.legend()
    fig.suptitle("ESR across models (our measurement)", y=1.02)
    return fig


def first_scores_no_steering(runs: Mapping[str, EsrRun]):
    """The paper's Fig. 13, our measurement: first-attempt scores without and with steering."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, run in runs.items():
        for condition, alpha in (("baseline", 0.7), ("steered", 0.4)):
            firsts = [m["first_score"] for m in map(trial_metrics, run.records[condition])
                      if m["first_score"] is not None]
            left.hist(firsts, bins=np.arange(0, 105, 5), alpha=alpha,
                      label=f"{name}, {condition}")
    left.set(xlabel="first-attempt score", ylabel="answers", title="first-attempt scores")
    left.legend(fontsize=8)
    x = np.arange(len(runs))
    for offset, condition in ((-0.18, "baseline"), (0.18, "steered")):
        means = [summarize(run.records[condition])["mean_first_score"] for run in runs.values()]
        right.bar(x + offset, [m.mean for m in means], width=0.34, label=condition,
                  yerr=[Z * np.nan_to_num(m.sem) for m in means], capsize=3)
    right.set_xticks(x, list(runs), rotation=15)
    right.set(ylim=(0, 100), ylabel="mean first-attempt score", title="mean with 95% interval")
    right.legend()
    return fig


def boost_sweep(run: EsrRun):
    """The paper's Fig. 3, our measurement: rates and first-attempt score against the shared,
    normalised boost (b − mean threshold)/σ."""
    rows = sweep_summary(run)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    x = [row["normalised"] for row in rows]
    uppers = [5.0]
    for key, colour in (("multi_attempt_rate", "C0"), ("esr_rate", "C3"),
                        ("improvement_rate", "C2")):
        p = np.array([100 * row[key].p for row in rows])
        lo = np.array([100 * row[key].ci[0] for row in rows])
        hi = np.array([100 * row[key].ci[1] for row in rows])
        left.plot(x, p, marker="o", color=colour, label=key.replace("_", " "))
        left.fill_between(x, lo, hi, color=colour, alpha=0.15)
        if key != "improvement_rate":
            uppers += [1.2 * u for u in hi if np.isfinite(u)]
    left.set(ylim=(0, max(uppers)), xlabel="normalised boost (b − mean threshold) / σ",
             ylabel="%", title=f"{run.model}: rates vs boost (our measurement)")
    left.legend(fontsize=8)
    right.errorbar(x, [row["mean_first_score"].mean for row in rows],
                   yerr=[Z * np.nan_to_num(row["mean_first_score"].sem) for row in rows],
                   marker="o", capsize=3)
    right.axhline(run.settings.target_score, color="grey", ls="--", lw=1,
                  label="calibration target")
    right.set(xlabel="normalised boost", ylabel="mean first-attempt score", ylim=(0, 100),
              title="first-attempt score vs boost")
    right.legend()
    return fig
