"""Reading the residual stream: per-token norms at chosen layers, computed inside the trace."""

from __future__ import annotations

from typing import Sequence

import torch

from esr_utils.generation import tokenize_chats
from esr_utils.models import LoadedModel

__all__ = ["residual_norms"]


@torch.no_grad()
def residual_norms(model: LoadedModel, prompts: Sequence[str], layers: Sequence[int],
                   batch_size: int = 8) -> dict[int, list[torch.Tensor]]:
    """L2 norm of the residual stream after each of `layers`, per real (unpadded) token.

    Returns `{layer: [norms of prompt 0 (n_tokens,), norms of prompt 1, ...]}` for the
    chat-formatted prompts. Norms are taken inside the trace, so a remote run sends back a few
    numbers per token, not activations.
    """
    if not prompts:
        raise ValueError("no prompts to measure")
    layers = [model.spec.check_layer(layer) for layer in layers]
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(prompts), batch_size):
        batch = tokenize_chats(model.tokenizer, prompts[start:start + batch_size])
        saved = {}
        with model.lm.trace(dict(batch), remote=model.remote):
            for layer in layers:
                saved[layer] = model.layer(layer).output.norm(dim=-1).save()
        mask = batch["attention_mask"].bool()
        for layer in layers:
            norms = saved[layer].float().cpu()
            out[layer].extend(norms[i][mask[i]] for i in range(norms.shape[0]))
    return out
