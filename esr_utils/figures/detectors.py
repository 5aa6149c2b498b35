"""Chapter 4: the off-topic-detector search, the ablation's rates (Fig. 5 layout), the
matched random-latent control (Fig. 19 layout), and activations around restarts (Figs 7, 20, 21)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from esr_utils.detectors import DetectorSearch
from esr_utils.episodes import aligned, ema

__all__ = ["detector_effect_sizes", "ablation_rates", "random_control", "restart_alignment",
           "region_bars", "single_episode"]

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


def restart_alignment(episodes_by_model: Mapping[str, Sequence], window: int = 40,
                      bin_size: int = 4):
    """Fig. 20 layout: summed detector activation per token, episodes aligned at the restart
    (offset 0), bin means with 95% intervals (±1.96 SEM over tokens and episodes in the bin)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, (name, episodes) in enumerate(episodes_by_model.items()):
        offsets, rows = aligned(episodes, window)
        if not len(rows):
            continue
        centres, means, halves = [], [], []
        for start in range(0, len(offsets), bin_size):
            values = rows[:, start:start + bin_size].ravel()
            values = values[~np.isnan(values)]
            if len(values) < 2:
                continue
            centres.append(offsets[start:start + bin_size].mean())
            means.append(values.mean())
            halves.append(1.96 * values.std(ddof=1) / np.sqrt(len(values)))
        centres, means, halves = map(np.array, (centres, means, halves))
        ax.plot(centres, means, marker="o", ms=3, color=f"C{i}",
                label=f"{name} (n={len(rows)} episodes)")
        ax.fill_between(centres, means - halves, means + halves, color=f"C{i}", alpha=0.2)
    ax.axvline(0, color="black", ls="--", lw=1)
    ax.set(xlabel="tokens from the restart", ylabel="summed detector activation",
           title="detector activation around self-corrections")
    ax.legend(fontsize=8)
    return fig


def region_bars(means_by_model: Mapping[str, Mapping]):
    """Fig. 21 layout: mean summed detector activation before the restart, after it, and in
    answers without a restart, per model, with 95% intervals (`episodes.region_means`)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    regions = list(next(iter(means_by_model.values())))
    width = 0.8 / len(regions)
    x = np.arange(len(means_by_model))
    for j, region in enumerate(regions):
        ms = [means[region] for means in means_by_model.values()]
        ax.bar(x + (j - (len(regions) - 1) / 2) * width, [m.mean for m in ms], width=width,
               yerr=[1.96 * np.nan_to_num(m.sem) for m in ms], capsize=3,
               label=f"{region}")
        for xi, m in zip(x + (j - (len(regions) - 1) / 2) * width, ms):
            ax.annotate(f"n={m.n}", (xi, 0), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, list(means_by_model))
    ax.set(ylabel="mean summed detector activation", title="by region")
    ax.legend(fontsize=8)
    return fig


def single_episode(episode, alpha: float = 0.5):
    """Fig. 7 layout: one answer's summed detector activation per token, smoothed by an EMA
    (α = `alpha`), the off-topic and after-restart phases shaded."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    n = len(episode.activation)
    ax.plot(np.arange(n), episode.activation, color="grey", lw=0.7, alpha=0.6, label="raw")
    ax.plot(np.arange(n), ema(episode.activation, alpha), color="C3", label=f"EMA α={alpha}")
    if episode.restart is not None:
        ax.axvspan(0, episode.restart, color="C1", alpha=0.12, label="before restart")
        ax.axvspan(episode.restart, n, color="C2", alpha=0.12, label="from restart on")
    r = episode.record
    ax.set(xlabel="answer token", ylabel="summed detector activation",
           title=f"latent {r.get('latent_id')} at boost {r.get('boost', 0):.1f}: "
                 f"{r.get('prompt', '')[:60]}")
    ax.legend(fontsize=8)
    return fig
