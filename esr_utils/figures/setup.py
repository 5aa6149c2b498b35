"""Chapter 1: the residual stream's scale by layer, and concept read-back against boost."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from esr_utils.metrics import Z

__all__ = ["residual_norms_by_layer", "concept_vs_boost"]


def residual_norms_by_layer(by_layer: pd.DataFrame, steering_layer: int,
                            steer_tokens: np.ndarray, scale: float):
    """Chapter 1: norm quartiles per layer (first token apart) and the steering layer's tokens."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.fill_between(by_layer.index, by_layer.q25, by_layer.q75, alpha=0.3,
                      label="25–75% of tokens")
    left.plot(by_layer.index, by_layer["median"], marker="o", ms=3, label="median token")
    left.plot(by_layer.index, by_layer["first token (median)"], ls="--", label="first token")
    left.axvline(steering_layer, color="grey", lw=1)
    left.set(yscale="log", xlabel="layer", ylabel="‖h‖ (log scale)",
             title="Residual-stream norm by layer")
    left.legend(fontsize=8)
    right.hist(steer_tokens, bins=40)
    right.axvline(scale, color="black", lw=1)
    right.set(xlabel="‖h‖ at the steering layer (first token excluded)", ylabel="tokens",
              title=f"Layer {steering_layer}: median ‖h‖ = {scale:.0f}")
    return fig


def concept_vs_boost(curve: pd.DataFrame, latent_id: int, n_prompts: int):
    """Chapter 1: concept read-back and distinct-token share against the boost (mean ± 95%)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, column, colour in ((left, "concept read-back", "C3"),
                               (right, "distinct share", "C0")):
        mean, sem = curve[(column, "mean")], curve[(column, "sem")].fillna(0)
        ax.errorbar(curve.index, mean, yerr=Z * sem, marker="o", capsize=3, color=colour)
        ax.set(xlabel="boost, in boost units", ylabel=column, ylim=(0, 1.05))
    left.set_title(f"latent {latent_id} read back from the answer")
    right.set_title("distinct tokens in the answer")
    fig.suptitle(f"Concept in, coherence out ({n_prompts} prompts, our measurement)", y=1.02)
    return fig
