"""How good an SAE is, measured the way the field measures SAEs.

* `l0`: mean number of active latents per token.
* `fve`: fraction of variance explained, `1 - Σ‖x - x̂‖² / Σ‖x - x̄‖²` over tokens.
* `ce_clean`, `ce_spliced`, `ce_zero`: the model's next-token loss as is, with the SAE's
  reconstruction spliced into the residual stream after block `layer`, and with that residual
  zeroed; `loss_recovered = (ce_zero - ce_spliced) / (ce_zero - ce_clean)`.
* `dead_fraction`, `dense_fraction`: latents that never fire, and latents that fire on more
  than 10% of tokens, on the evaluated tokens.

Position 0 of every context is left untouched everywhere (not encoded, not spliced, not
zeroed): its residual is an attention-sink outlier that the SAE was not trained on. Other tokens
can be such sinks too (in Python docstrings, some newlines have residual norms ~100x the
median): `evaluate_sae` leaves tokens above `OUTLIER_FACTOR` x the median norm out of L0 and FVE
and counts them (`n_outlier_tokens`), since one of them would otherwise decide the FVE alone.
Loss recovered still splices every token but position 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from esr_utils.saes.training.activations import collect_activations, pad_contexts

__all__ = ["DENSE_THRESHOLD", "OUTLIER_FACTOR", "outlier_tokens", "latent_statistics",
           "splice_losses", "evaluate_sae", "evaluate_sources", "meets_targets"]

DENSE_THRESHOLD = 0.1
OUTLIER_FACTOR = 10.0


def outlier_tokens(acts: Tensor, factor: float = OUTLIER_FACTOR) -> Tensor:
    """Boolean mask of tokens whose residual norm exceeds `factor` x the median norm."""
    norms = acts.float().norm(dim=-1)
    return norms > factor * norms.median()


@torch.no_grad()
def latent_statistics(sae, acts: Tensor, batch_size: int = 4096) -> dict:
    """L0, FVE and per-latent firing counts of `sae` on activations [n_tokens, d_model]."""
    d_sae = sae.W_dec.shape[0]
    counts = torch.zeros(d_sae, dtype=torch.long)
    sq_err = 0.0
    n = acts.shape[0]
    mean = acts.float().mean(0)
    total_var = float(((acts.float() - mean) ** 2).sum())
    l0_sum = 0.0
    l0_per_token = []
    for start in range(0, n, batch_size):
        x = acts[start:start + batch_size].float()
        f = sae.encode(x)
        x_hat = sae.decode(f)
        active = f > 0
        counts += active.sum(0)
        l0_tok = active.sum(1).float()
        l0_per_token.append(l0_tok)
        l0_sum += float(l0_tok.sum())
        sq_err += float(((x - x_hat) ** 2).sum())
    freq = counts.float() / n
    return {
        "n_tokens": n,
        "l0": l0_sum / n,
        "fve": 1.0 - sq_err / total_var,
        "counts": counts,
        "frequency": freq,
        "l0_per_token": torch.cat(l0_per_token),
        "dead_fraction": float((counts == 0).float().mean()),
        "dense_fraction": float((freq > DENSE_THRESHOLD).float().mean()),
    }


@contextmanager
def _replace_residual(hf, layer: int, fn):
    """Replace block `layer`'s output h with fn(h) at positions ≥ 1 during forward passes."""

    def hook(module, args, output):
        h = output if isinstance(output, Tensor) else output[0]
        new = h.clone()
        new[:, 1:] = fn(h[:, 1:]).to(h.dtype)
        return new if isinstance(output, Tensor) else (new, *output[1:])

    handle = hf.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def _next_token_loss(hf, tokens: Tensor, batch_size: int) -> float:
    """Mean next-token cross-entropy over real (non-padding, -1) tokens, predicting positions ≥ 2.

    The prediction made at position 0 is skipped, since position 0 is never edited.
    """
    total, count = 0.0, 0
    for start in range(0, tokens.shape[0], batch_size):
        chunk = tokens[start:start + batch_size]
        mask = chunk >= 0
        logits = hf(input_ids=chunk.clamp(min=0), attention_mask=mask.long()).logits
        targets = chunk[:, 2:]
        valid = mask[:, 2:]
        lp = torch.log_softmax(logits[:, 1:-1].float(), dim=-1)
        nll = -lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        total += float(nll[valid].sum())
        count += int(valid.sum())
    return total / max(count, 1)


def splice_losses(sae, hf, tokens: Tensor, layer: int, batch_size: int = 8) -> dict:
    """Clean, SAE-spliced and zero-ablated next-token loss on contexts [n_ctx, ctx] (-1 = pad)."""
    clean = _next_token_loss(hf, tokens, batch_size)
    with _replace_residual(hf, layer, lambda h: sae.decode(sae.encode(h.float()))):
        spliced = _next_token_loss(hf, tokens, batch_size)
    with _replace_residual(hf, layer, torch.zeros_like):
        zero = _next_token_loss(hf, tokens, batch_size)
    return {
        "ce_clean": clean,
        "ce_spliced": spliced,
        "ce_zero": zero,
        "ce_increase": spliced - clean,
        "loss_recovered": (zero - spliced) / (zero - clean),
    }


def evaluate_sae(sae, hf, tokens: Tensor, layer: int, acts: Tensor | None = None,
                 batch_size: int = 8) -> dict:
    """All the headline numbers on held-out contexts, as plain floats (JSON-ready).

    `acts` are those contexts' activations (position 0 excluded); computed when not given.
    """
    if acts is None:
        contexts = [[int(t) for t in row if t >= 0] for row in tokens]
        acts = collect_activations(hf, None, contexts, layer, progress=False)["acts"]
    outliers = outlier_tokens(acts)
    stats = latent_statistics(sae, acts[~outliers])
    out = {k: float(v) for k, v in stats.items() if not isinstance(v, Tensor)}
    out["n_outlier_tokens"] = int(outliers.sum())
    out.update(splice_losses(sae, hf, tokens, layer, batch_size))
    out["n_contexts"] = int(tokens.shape[0])
    return out


def evaluate_sources(sae, hf, heldout: dict[str, Sequence[Sequence[int]]], layer: int,
                     progress: bool = True) -> dict[str, dict]:
    """`evaluate_sae` on each source's held-out contexts: {source: metrics}."""
    from tqdm.auto import tqdm

    return {source: evaluate_sae(sae, hf, pad_contexts(contexts), layer)
            for source, contexts in tqdm(heldout.items(), disable=not progress,
                                         desc="held-out sources")}


def meets_targets(metrics: dict, targets: dict) -> dict[str, bool]:
    """Which quality targets one source's metrics meet: FVE and loss recovered at least the
    target, L0 inside its range."""
    low, high = targets["l0"]
    return {"fve": metrics["fve"] >= targets["fve"],
            "loss_recovered": metrics["loss_recovered"] >= targets["loss_recovered"],
            "l0": low <= metrics["l0"] <= high}
