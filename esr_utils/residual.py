"""The residual stream's scale and what an SAE reads from it: norms, the boost unit, read-back.

Definitions used by every chapter (one place each):

* the **residual-norm scale** of a layer is the median L2 norm of the residual stream after that
  layer over the chat-formatted prompts' tokens, *position 0 left out*: the first position is a
  massive-activation outlier one to two orders of magnitude larger (chapter 1, appendix A1);
* the **boost unit** of a latent is that scale divided by the norm of its decoder row: a boost of
  one unit adds a vector as long as a typical residual;
* a latent's **concept read-back** on an answer is the share of the answer's tokens on which the
  latent fires when the *unsteered* model reads the exchange (prompt, then answer) back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from esr_utils.generation import tokenize_chats, tokenize_texts
from esr_utils.models import LoadedModel
from esr_utils.prompts import chat_text, conversation_text

__all__ = ["residual_norms", "median_residual_norm", "boost_unit", "latent_activation_stats",
           "concept_read_back"]


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
        saved = model.read_residuals(batch, layers, transform=lambda h: h.norm(dim=-1))
        mask = batch["attention_mask"].bool()
        for layer in layers:
            norms = saved[layer].float().cpu()
            out[layer].extend(norms[i][mask[i]] for i in range(norms.shape[0]))
    return out


def median_residual_norm(norms: Sequence[torch.Tensor]) -> float:
    """The residual-norm scale: the median per-token norm, position 0 of every text left out.

    `norms` is one layer's entry of `residual_norms`.

    >>> median_residual_norm([torch.tensor([900.0, 1.0, 3.0]), torch.tensor([800.0, 2.0])])
    2.0
    """
    rest = [n[1:] for n in norms if len(n) > 1]
    if not rest:
        raise ValueError("no tokens after position 0 to take a median over")
    return float(torch.cat(rest).median())


def boost_unit(scale: float, decoder_rows: torch.Tensor) -> float:
    """The boost that adds a vector as long as the residual-norm `scale`.

    `decoder_rows` is one decoder row (a latent's own unit) or several (the unit of their median
    row norm, as a shared prior for many latents).

    >>> boost_unit(200.0, torch.tensor([[3.0, 4.0]]))
    40.0
    """
    rows = decoder_rows.detach().float().reshape(-1, decoder_rows.shape[-1])
    norm = float(rows.norm(dim=-1).median())
    if not scale > 0 or not norm > 0:
        raise ValueError(f"the scale ({scale}) and the decoder row norm ({norm}) must be positive")
    return scale / norm


@torch.no_grad()
def latent_activation_stats(model: LoadedModel, sae, texts: Sequence[str], layer: int, *,
                            skip_first: bool = True, batch_size: int = 8
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per text, each latent's max and mean activation over its tokens: two [n_texts, d_sae].

    `texts` are already chat-formatted. `skip_first` leaves position 0 out (its residual is the
    massive-activation outlier); the paper code's relevance filter reads every prompt token.
    """
    layer = model.spec.check_layer(layer)
    maxima, means = [], []
    for start in range(0, len(texts), batch_size):
        batch = tokenize_texts(model.tokenizer, texts[start:start + batch_size])
        hidden = model.read_residuals(batch, [layer])[layer]
        mask = batch["attention_mask"].bool()
        for row in range(hidden.shape[0]):
            h = hidden[row][mask[row]][1 if skip_first else 0:]
            acts = sae.encode(h.to(sae.W_enc.device, sae.W_enc.dtype))
            maxima.append(acts.amax(dim=0).float().cpu())
            means.append(acts.mean(dim=0).float().cpu())
    return torch.stack(maxima), torch.stack(means)


@torch.no_grad()
def concept_read_back(model: LoadedModel, sae, prompts: Sequence[str], responses: Sequence[str],
                      latent_ids: Sequence[int], layer: int | None = None) -> list[float]:
    """Per answer, the share of its tokens on which its latent fires when read back unsteered.

    The exchange (prompt, then answer) goes through the model in its chat template, and only
    the answer's tokens count. An empty answer reads back 0.
    """
    if not len(prompts) == len(responses) == len(latent_ids):
        raise ValueError("prompts, responses and latent_ids must have the same length")
    layer = model.spec.check_layer(model.spec.sae.layer if layer is None else layer)
    tok = model.tokenizer
    out = []
    for prompt, response, k in zip(prompts, responses, latent_ids):
        n_answer = len(tok(response, add_special_tokens=False)["input_ids"])
        if n_answer == 0:
            out.append(0.0)
            continue
        text = conversation_text(tok, prompt, response)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        start = len(tok(chat_text(tok, prompt), add_special_tokens=False)["input_ids"])
        hidden = model.read_residuals(ids, [layer])[layer]
        h = hidden[0, start:start + n_answer].to(sae.W_enc.device, sae.W_enc.dtype)
        out.append(float((sae.encode(h)[:, k] > 0).float().mean()))
    return out
