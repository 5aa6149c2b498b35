"""Scoring concept labels the way automated-interpretability work scores them.

For a latent with label L, take held-out contexts (text the labels were not built from), each
centred on one token: does the MiniLM similarity between L and a context predict whether the
latent fires on that token? The score is the AUC: 1.0 when every firing context is closer to
the label than every non-firing one, 0.5 for a label that says nothing. The same AUCs with the
labels shuffled between latents give the baseline a label-free guess would reach.
"""

from __future__ import annotations

import numpy as np
import torch

from esr_utils.saes.training.concepts import MIN_POSITION, embed, plain, snippet

__all__ = ["MIN_POSITIVES", "context_pool", "auc_rows", "score_labels"]

MIN_POSITIVES = 5  # latents firing on fewer pool contexts are not scored


def context_pool(tokenizer, data: dict, n: int, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Up to `n` random activation rows (positions ≥ `MIN_POSITION`) and their contexts' text."""
    candidates = (data["index"][:, 1] >= MIN_POSITION).nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    rows = candidates[torch.randperm(len(candidates), generator=gen)[:n]].sort().values
    texts = []
    for r in rows.tolist():
        ctx, pos = data["index"][r].tolist()
        texts.append(plain(snippet(tokenizer, data["tokens"][ctx].tolist(), pos)[1], tokenizer))
    return rows, texts


def auc_rows(scores: np.ndarray, positive: np.ndarray,
             min_positives: int = MIN_POSITIVES) -> np.ndarray:
    """Mann-Whitney AUC per row of `scores` [n, m] for `positive` [n, m] (bool) against the
    rest; NaN where a row has fewer than `min_positives` positives or no negatives."""
    ranks = scores.argsort(axis=1).argsort(axis=1).astype(np.float64) + 1.0
    n_pos = positive.sum(1).astype(np.float64)
    n_neg = positive.shape[1] - n_pos
    u = (ranks * positive).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    auc[(n_pos < min_positives) | (n_neg < 1)] = np.nan
    return auc


@torch.no_grad()
def score_labels(sae, labels: dict, tokenizer, heldout: dict, minilm, n_contexts: int = 1500,
                 seed: int = 0) -> dict:
    """AUC of each live latent's concept on held-out contexts, and the shuffled baseline.

    `labels` is `build_labels`'s output (its entries gain an `auc`); `heldout` is
    `collect_activations` output for held-out text.
    """
    rows, texts = context_pool(tokenizer, heldout, n_contexts, seed)
    ctx_vecs = embed(minilm, texts)
    fired = (sae.encode(heldout["acts"][rows].float()) > 0).numpy().T  # [d_sae, n_pool]
    ids = sorted(int(k) for k in labels["latents"])
    label_vecs = embed(minilm, [labels["latents"][str(j)]["concept"] for j in ids])
    aucs = auc_rows(label_vecs @ ctx_vecs.T, fired[ids])
    perm = np.random.default_rng(seed).permutation(len(ids))
    shuffled = auc_rows(label_vecs[perm] @ ctx_vecs.T, fired[ids])
    for j, a in zip(ids, aucs):
        labels["latents"][str(j)]["auc"] = None if np.isnan(a) else round(float(a), 4)
    scored = ~np.isnan(aucs)
    return {
        "median_auc": float(np.median(aucs[scored])) if scored.any() else float("nan"),
        "shuffled_median_auc": float(np.nanmedian(shuffled)) if scored.any() else float("nan"),
        "n_scored": int(scored.sum()),
        "n_live": len(ids),
        "n_contexts": len(texts),
        "min_positives": MIN_POSITIVES,
        "method": labels["meta"]["method"],
    }
