"""Chapter 4: the off-topic-detector search, the ablation's rates (Fig. 5 layout) and the
matched random-latent control (Fig. 19 layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from esr_utils.detectors import DetectorSearch

__all__ = ["detector_effect_sizes", "ablation_rates", "random_control"]

_METRICS = (("first score", "mean first-attempt score"), ("multi-attempt %", "multi-attempt rate"),
            ("ESR %", "ESR rate"))


def detector_effect_sizes(searches: Mapping[str, DetectorSearch]):
    """Per model: every latent's Cohen's d on the discovery prompts against its d on the
    held-out confirmation prompts; the selected detectors in colour."""
    fig, axes = plt.subplots(1, len(searches), figsize=(5.2 * len(searches), 4.2), squeeze=False)
    for ax, (name, s) in zip(axes[0], searches.items()):
        d_a, d_c = s.discovery["d"], s.confirmation["d"]
        ax.scatter(d_a, d_c, s=6, color="grey", alpha=0.4, label="all latents")
        chosen = list(s.detectors)
        ax.scatter(d_a[chosen], d_c[chosen], s=22, color="C3", label="selected detectors")
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(0, color="black", lw=0.6)
        ax.set(xlabel="Cohen's d, discovery prompts", ylabel="Cohen's d, confirmation prompts",
               title=f"{name}: off- vs on-topic answers")
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _bar_panel(ax, rows: Sequence[dict], key: str, title: str):
    x = np.arange(len(rows))
    values = np.array([r[key] for r in rows])
    lo = np.array([r[f"{key.removesuffix(' %')} CI"][0] for r in rows])
    hi = np.array([r[f"{key.removesuffix(' %')} CI"][1] for r in rows])
    ax.bar(x, values, yerr=[values - lo, hi - values], capsize=3,
           color=[f"C{i}" for i in range(len(rows))])
    ax.set_xticks(x, [r["condition"] for r in rows], rotation=25, ha="right")
    ax.set(title=title)


def ablation_rates(rows_by_model: Mapping[str, Sequence[dict]]):
    """Fig. 5 layout: per model, first-attempt score, multi-attempt and ESR rates per condition
    (`ablation.condition_rows`), 95% intervals (Wilson for rates, ±1.96 SEM for scores)."""
    models = list(rows_by_model)
    fig, axes = plt.subplots(len(models), 3, figsize=(13, 3.6 * len(models)), squeeze=False)
    for row_axes, name in zip(axes, models):
        rows = rows_by_model[name]
        for ax, (key, title) in zip(row_axes, _METRICS):
            _bar_panel(ax, rows, key, f"{name}: {title}")
        row_axes[0].set_ylabel("score (0–100)")
        row_axes[1].set_ylabel("% of valid trials")
    fig.tight_layout()
    return fig


def random_control(rows: Sequence[dict], detector: str = "detectors",
                   baseline: str = "baseline", random_prefix: str = "random"):
    """Fig. 19 layout for one model: each matched random set as a point, the detector ablation
    and the baseline as lines, for the three metrics."""
    by_name = {r["condition"]: r for r in rows}
    randoms = [r for r in rows if r["condition"].startswith(random_prefix)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, title) in zip(axes, _METRICS):
        values = [r[key] for r in randoms]
        ax.scatter(np.zeros(len(values)) + np.linspace(-0.1, 0.1, len(values)), values,
                   color="grey", label=f"{len(values)} matched random sets")
        for name, colour in ((detector, "C3"), (baseline, "black")):
            if name in by_name:
                ax.axhline(by_name[name][key], color=colour, ls="--", label=name)
        ax.set_xticks([])
        ax.set(title=title, xlim=(-0.5, 0.5))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
