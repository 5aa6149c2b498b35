"""Chapter 3: the prefill control's rates per cut point, steering off vs on, with the paper's
70B numbers as a labelled reference panel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["prefill_rates", "first_k_rates", "decomposition", "PAPER_PREFILL_70B"]

# the authors' published prefill control on Llama-3.3-70B-Instruct (200 episodes): cut in
# characters -> % self-corrected and improved with steering off; the steered model on the same
# episodes was at 2-3%
PAPER_PREFILL_70B = {500: 7.0, 1100: 13.5, 1500: 11.3, 2000: 11.9}
PAPER_STEERED_70B = (2.0, 3.0)


def _yerr(f: pd.DataFrame) -> list:
    """Error bars in % from rate, lo, hi; a Wilson bound that rounding puts a hair past the rate
    (e.g. 1 - 1e-16 at k = n) is drawn as 0, not rejected."""
    return [np.clip(100 * (f.rate - f.lo), 0, None), np.clip(100 * (f.hi - f.rate), 0, None)]


def prefill_rates(rows: pd.DataFrame, metrics=("self-correction", "improved | corrected", "ESR")):
    """One panel per metric: rate (%) against the cut (characters), a line per model and
    condition, Wilson 95% intervals; a last panel with the paper's 70B reference.

    `rows` has columns model, condition, cut, metric, rate, lo, hi (from `prefill.rate_rows`).
    Cuts are placed in the order given: characters, shares of the answer ("50%"), "restart".
    """
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(4.2 * (len(metrics) + 1), 3.8))
    styles = {"unsteered continuation": "-", "steered continuation": "--",
              "stored steered answer": ":"}
    groups = list(rows.groupby(["model", "condition"], sort=False))
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(rows["model"]))}
    position = {c: i for i, c in enumerate(dict.fromkeys(rows["cut"]))}
    for ax, metric in zip(axes, metrics):
        for (model, condition), frame in groups:
            f = frame[frame.metric == metric]
            if f.empty:
                continue
            ax.errorbar([position[c] for c in f.cut], 100 * f.rate,
                        yerr=_yerr(f),
                        ls=styles.get(condition, "-"), marker="o", capsize=3,
                        color=colours[model], label=f"{model}, {condition}")
        ax.set_xticks(list(position.values()),
                      ["before\nrestart" if c == "restart" else str(c) for c in position])
        ax.set(xlabel="cut (characters, share, or before the restart)",
               ylabel=f"{metric} (%)", title=metric, ylim=(0, 100))
    axes[0].legend(fontsize=7, loc="upper left")
    ref = axes[-1]
    cuts = list(PAPER_PREFILL_70B)
    ref.bar([str(c) for c in cuts], list(PAPER_PREFILL_70B.values()), color="grey",
            label="unsteered continuation")
    ref.axhspan(*PAPER_STEERED_70B, color="C3", alpha=0.3, label="steered, same episodes")
    ref.set(xlabel="prefix length (characters)", ylabel="self-corrected and improved (%)",
            title="paper, Llama-3.3-70B (reference)", ylim=(0, 20))
    ref.legend(fontsize=7)
    fig.tight_layout()
    return fig


def first_k_rates(rows: pd.DataFrame):
    """Rate (%) against k, the answer tokens sampled under steering, one line per model and
    metric, Wilson 95% intervals. k = 0 is the unsteered baseline and the last point, drawn at
    `k_all`, the answer steered throughout.

    `rows` has columns model, k (int, or "all"), metric, rate, lo, hi.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    numeric = [k for k in rows.k if k != "all"]
    k_all = 2 * max(numeric) if numeric else 1
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(rows["model"]))}
    styles = dict(zip(dict.fromkeys(rows["metric"]), ["-", "--", ":", "-."]))
    for (model, metric), f in rows.groupby(["model", "metric"], sort=False):
        x = [k_all if k == "all" else k for k in f.k]
        ax.errorbar(x, 100 * f.rate, yerr=_yerr(f),
                    ls=styles[metric], marker="o", capsize=3, color=colours[model],
                    label=f"{model}, {metric}")
    ticks = sorted(set(numeric)) + [k_all]
    ax.set_xticks(ticks, [str(t) for t in ticks[:-1]] + ["whole\nanswer"])
    ax.set(xlabel="answer tokens sampled under steering (k)", ylabel="rate (%)", ylim=(0, 100),
           title="Steering only the first k tokens")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def decomposition(rows: pd.DataFrame):
    """Per model: P(detect), P(stay on topic | detect), their product, and the measured ESR
    rate, with 95% intervals (`rows`: columns model, quantity, rate, lo, hi)."""
    quantities = list(dict.fromkeys(rows["quantity"]))
    models = list(dict.fromkeys(rows["model"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(models), 3.8))
    width = 0.8 / len(quantities)
    for j, quantity in enumerate(quantities):
        f = rows[rows.quantity == quantity].set_index("model").reindex(models)
        x = [i + (j - (len(quantities) - 1) / 2) * width for i in range(len(models))]
        ax.bar(x, 100 * f.rate, width, color=f"C{j}", label=quantity,
               yerr=_yerr(f), capsize=3)
    ax.set_xticks(range(len(models)), models)
    ax.set(ylabel="%", ylim=(0, 100), title="Detection × staying on topic vs measured ESR")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
