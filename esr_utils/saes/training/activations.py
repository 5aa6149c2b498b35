"""Residual-stream activations of the embedded model, for training and evaluating its SAE.

Position 0 of every context is dropped: its norm is an outlier (up to ~25,000 against a median
of ~195 at layer 18), like an attention sink, and would dominate the reconstruction loss.
Padding is dropped too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["load_embedded_hf", "residuals", "collect_activations", "pad_contexts"]


def load_embedded_hf():
    """The dense embedded model as a plain transformers model (float32, eval mode) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from esr_utils.models import embedded_dense_dir

    path = embedded_dense_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer


class _StopForward(Exception):
    pass


@torch.no_grad()
def residuals(hf, input_ids: Tensor, attention_mask: Tensor | None, layer: int) -> Tensor:
    """Residual stream after decoder block `layer`: [batch, seq, d_model], later blocks not run."""
    captured = {}

    def hook(module, args, output):
        captured["h"] = output if isinstance(output, Tensor) else output[0]
        raise _StopForward

    handle = hf.model.layers[layer].register_forward_hook(hook)
    try:
        hf.model(input_ids=input_ids, attention_mask=attention_mask)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["h"]


def pad_contexts(contexts: Sequence[Sequence[int]]) -> Tensor:
    """Token contexts as one [n_ctx, max_len] tensor, padded with -1."""
    width = max(len(c) for c in contexts)
    tokens = torch.full((len(contexts), width), -1, dtype=torch.long)
    for i, c in enumerate(contexts):
        tokens[i, : len(c)] = torch.tensor(c)
    return tokens


@torch.no_grad()
def collect_activations(hf, tokenizer, contexts: Sequence[Sequence[int]], layer: int,
                        batch_size: int = 16, progress: bool = True) -> dict:
    """Residuals at `layer` for every token of every context except position 0 and padding.

    Returns `acts` [n_tokens, d_model] (float16), plus `tokens` [n_ctx, ctx] (padded with -1)
    and `index` [n_tokens, 2] (context, position) so activations can be traced back to text.
    """
    from tqdm.auto import tqdm

    tokens = pad_contexts(contexts)
    # padded positions are dropped, so any id works as padding
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    acts, index = [], []
    for start in tqdm(range(0, len(contexts), batch_size), disable=not progress,
                      desc="activations"):
        chunk = tokens[start:start + batch_size]
        mask = chunk >= 0
        h = residuals(hf, chunk.clamp(min=0).masked_fill(~mask, pad_id), mask.long(), layer)
        keep = mask.clone()
        keep[:, 0] = False  # attention-sink position: outlier norm
        rows, cols = keep.nonzero(as_tuple=True)
        acts.append(h[rows, cols].to(torch.float16))
        index.append(torch.stack([rows + start, cols], dim=1))
    return {"acts": torch.cat(acts), "tokens": tokens, "index": torch.cat(index)}
