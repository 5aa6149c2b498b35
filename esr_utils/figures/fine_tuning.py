"""Chapter 6: the paper's Fig. 6 layout for the fine-tuned mixtures."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from esr_utils.esr_run import EsrRun
from esr_utils.metrics import summarize

__all__ = ["fine_tuning_rates"]


def fine_tuning_rates(mixtures: Mapping[float, EsrRun], base: EsrRun,
                      shipped: tuple[float, EsrRun] | None = None):
    """The paper's Fig. 6, our measurement: multi-attempt rate, multi-attempt improvement rate
    and ESR rate against the self-correction share of the training mixture, each model at its
    own calibrated thresholds; the base model as a dashed line with its 95% band; `shipped`
    (share, run) marks the shipped organism."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True)
    shares = sorted(mixtures)
    for ax, key, title in ((axes[0], "multi_attempt_rate", "multi-attempt rate"),
                           (axes[1], "improvement_rate", "multi-attempt improvement rate"),
                           (axes[2], "esr_rate", "ESR rate")):
        b = summarize(base.records["steered"])[key]
        if b.n:
            ax.axhline(100 * b.p, color="grey", ls="--", label=f"base model ({b.k}/{b.n})")
            ax.axhspan(100 * b.ci[0], 100 * b.ci[1], color="grey", alpha=0.15)
        rates = [summarize(mixtures[s].records["steered"])[key] for s in shares]
        xs = [100 * s for s, r in zip(shares, rates) if r.n]
        ys = [100 * r.p for r in rates if r.n]
        err = np.array([[100 * (r.p - r.ci[0]), 100 * (r.ci[1] - r.p)] for r in rates if r.n]).T
        if xs:
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label="retrained here")
        for s, r in zip(shares, rates):
            ax.annotate(f"{r.k}/{r.n}", (100 * s, 100 * r.p if r.n else 0), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        if shipped is not None:
            r = summarize(shipped[1].records["steered"])[key]
            if r.n:
                ax.errorbar([100 * shipped[0]], [100 * r.p], capsize=3, marker="*", ms=11,
                            yerr=[[100 * (r.p - r.ci[0])], [100 * (r.ci[1] - r.p)]],
                            ls="none", color="C3", label=f"shipped organism ({r.k}/{r.n})")
        ax.set(xlabel="self-correction examples in the mixture (%)", ylabel="% of trials"
               if key != "improvement_rate" else "% of multi-attempt trials", title=title,
               xlim=(0, 100), ylim=(0, None))
        ax.legend(fontsize=7)
    fig.suptitle("Fine-tuning on self-correction data (our measurement; the paper's Fig. 6 "
                 "layout)", y=1.03)
    return fig
