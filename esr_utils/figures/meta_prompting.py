"""Chapter 5: the paper's Fig. 4 layout (self-monitor vs baseline across models) and its
Figs 14–18 layout (every variant against the baseline, one row of panels per model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from esr_utils.meta_prompts import BASELINE, SELF_MONITOR
from esr_utils.metrics import Mean, Rate, summarize

__all__ = ["meta_prompt_across_models", "meta_prompt_variants"]

_PANELS = (("mean_first_score", "first-attempt score", "score (0–100)"),
           ("multi_attempt_rate", "multi-attempt", "% of trials"),
           ("esr_rate", "ESR rate", "% of trials"))
_MSI = ("mean_score_improvement", "conditional mean score improvement",
        "last − first score")
_PURPLE = "#7B3FA0"


def _value(x) -> tuple[float, float, float]:
    """(value, lower error, upper error) on the plotted scale; NaN for no data."""
    if isinstance(x, Rate):
        if not x.n:
            return (np.nan, 0.0, 0.0)
        return (100 * x.p, 100 * (x.p - x.ci[0]), 100 * (x.ci[1] - x.p))
    if isinstance(x, Mean):
        if x.n == 0:
            return (np.nan, 0.0, 0.0)
        lo, hi = x.ci
        return (x.mean, np.nan_to_num(x.mean - lo), np.nan_to_num(hi - x.mean))
    raise TypeError(f"cannot plot {x!r}")


def _bars(ax, x, summaries, key, width, **style):
    vals = [_value(s[key]) for s in summaries]
    ys = [v[0] for v in vals]
    err = np.array([[v[1] for v in vals], [v[2] for v in vals]])
    ax.bar(x, np.nan_to_num(ys), width, yerr=err, capsize=3, **style)


def meta_prompt_across_models(results: Mapping[str, Mapping[str, Sequence[Mapping]]],
                              variant: str = SELF_MONITOR):
    """The paper's Fig. 4, our measurement: per model, the baseline (dashed grey) against one
    variant (solid purple) on first-attempt score, multi-attempt % and ESR %, 95% intervals.

    `results[model][condition]` are judged records; condition `BASELINE` and `variant`.
    """
    models = [m for m in results if variant in results[m]]
    if not models:
        raise ValueError(f"no model has the variant {variant!r}: run it first")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    x = np.arange(len(models))
    for ax, (key, title, ylabel) in zip(axes, _PANELS):
        base = [summarize(results[m][BASELINE]) for m in models]
        meta = [summarize(results[m][variant]) for m in models]
        _bars(ax, x - 0.2, base, key, 0.4, color="white", edgecolor="grey", linestyle="--",
              linewidth=1.5, ecolor="grey", label="baseline")
        _bars(ax, x + 0.2, meta, key, 0.4, color=_PURPLE, ecolor="black", label=variant)
        for i, s in enumerate(meta):
            if key != "mean_first_score":
                r = s[key]
                ax.annotate(f"{r.k}/{r.n}", (x[i] + 0.2, 0), fontsize=7, ha="center",
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, models, rotation=20, ha="right", fontsize=8)
        # rates on a percent axis of at least 0–5%, so an all-zero panel reads as zero
        ax.set(title=title, ylabel=ylabel, ylim=(0, 100) if key == "mean_first_score"
               else (0, max(5.0, ax.get_ylim()[1])))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Meta-prompting: baseline vs {variant!r} (our measurement; the paper's Fig. 4 "
                 "layout)", y=1.03)
    return fig


def meta_prompt_variants(results: Mapping[str, Mapping[str, Sequence[Mapping]]]):
    """The paper's Figs 14–18, our measurement: one row per model; per panel the baseline and
    every variant run, on first-attempt score, multi-attempt %, ESR % and the conditional
    mean score improvement, 95% intervals."""
    models = list(results)
    panels = (*_PANELS, _MSI)
    fig, axes = plt.subplots(len(models), 4, figsize=(15, 3.4 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        names = [BASELINE, *[c for c in results[model] if c != BASELINE]]
        summaries = [summarize(results[model][c]) for c in names]
        x = np.arange(len(names))
        colours = ["lightgrey"] + [_PURPLE if c == SELF_MONITOR else f"C{i}"
                                   for i, c in enumerate(names[1:])]
        for ax, (key, title, ylabel) in zip(row, panels):
            vals = [_value(s[key]) for s in summaries]
            err = np.array([[v[1] for v in vals], [v[2] for v in vals]])
            ax.bar(x, np.nan_to_num([v[0] for v in vals]), yerr=err, capsize=3, color=colours,
                   edgecolor="black", linewidth=0.5)
            if key == "mean_first_score" or key == _MSI[0]:
                for i, v in enumerate(vals):
                    if np.isnan(v[0]):
                        ax.annotate("n/a", (x[i], 0), ha="center", fontsize=7)
            ax.axhline(np.nan_to_num(vals[0][0]), color="grey", ls="--", lw=1)
            ax.set_xticks(x, names, rotation=35, ha="right", fontsize=7)
            ax.set(title=f"{model}: {title}" if key == "mean_first_score" else title,
                   ylabel=ylabel)
            if key in ("multi_attempt_rate", "esr_rate"):
                ax.set_ylim(0, max(5.0, ax.get_ylim()[1]))
    fig.suptitle("Meta-prompt variants against the baseline (our measurement; the paper's "
                 "Figs 14–18 layout)", y=1.0)
    fig.tight_layout()
    return fig
