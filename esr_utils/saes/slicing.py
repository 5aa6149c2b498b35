"""The few rows a steering or ablation needs (`SaeSlice`), sliced from any sae-lens SAE."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from esr_utils.saes.ids import check_latent_ids

__all__ = ["SaeSlice", "slice_sae"]

_SLICEABLE = {"standard", "jumprelu"}


def _architecture(sae) -> str:
    arch = sae.cfg.architecture
    return arch() if callable(arch) else str(arch)


@dataclass
class SaeSlice:
    """Decoder rows of steered latents and encoder columns of ablated latents, nothing else.

    Steering needs `W_dec[latent]`; zero-ablation needs each ablated latent's activation
    `f_k = act(h' @ W_enc[:, k] + b_enc[k])` (with a JumpReLU threshold where the SAE has one) and
    its decoder row. Keeping only these rows keeps the payload of a remote (NDIF) run small: a
    full SAE for a 70B model is gigabytes, a few rows are kilobytes.
    """

    d_model: int
    d_sae: int
    steer_ids: tuple[int, ...]
    steer_rows: Tensor  # [n_steer, d_model]
    ablate_ids: tuple[int, ...]
    enc_cols: Tensor  # [d_model, n_ablate]
    enc_bias: Tensor  # [n_ablate]
    dec_rows: Tensor  # [n_ablate, d_model]
    threshold: Tensor | None  # [n_ablate] for JumpReLU SAEs
    input_bias: Tensor  # b_dec where the SAE subtracts it from its input, else zeros

    def steer_row(self, latent_id: int) -> Tensor:
        return self.steer_rows[self.steer_ids.index(latent_id)]

    def encode_ablated(self, h: Tensor) -> Tensor:
        """Activations of the ablated latents: [..., d_model] -> [..., n_ablate]."""
        pre = (h.to(self.enc_cols.dtype) - self.input_bias) @ self.enc_cols + self.enc_bias
        acts = torch.relu(pre)
        if self.threshold is not None:
            acts = acts * (pre > self.threshold).to(acts.dtype)
        return acts

    def to(self, device=None, dtype=None) -> SaeSlice:
        def move(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        return SaeSlice(
            self.d_model, self.d_sae, self.steer_ids, move(self.steer_rows), self.ablate_ids,
            move(self.enc_cols), move(self.enc_bias), move(self.dec_rows), move(self.threshold),
            move(self.input_bias),
        )


@torch.no_grad()
def slice_sae(sae, steer_ids: Iterable[int] = (), ablate_ids: Iterable[int] = ()) -> SaeSlice:
    """Cut the rows that steering `steer_ids` and ablating `ablate_ids` need out of a sae-lens
    SAE."""
    d_sae, d_model = sae.W_dec.shape
    steer_ids = tuple(sorted(set(check_latent_ids(steer_ids, d_sae))))
    ablate_ids = tuple(sorted(set(check_latent_ids(ablate_ids, d_sae))))
    arch = _architecture(sae)
    if ablate_ids and arch not in _SLICEABLE:
        raise ValueError(
            f"ablating latents of a {arch!r} SAE cannot be sliced (its activations depend on all "
            f"latents); use a standard (ReLU) or JumpReLU SAE"
        )
    norm = getattr(sae.cfg, "normalize_activations", "none")
    if ablate_ids and norm not in ("none", None):
        raise ValueError(f"SAEs with normalize_activations={norm!r} are not supported for ablation")
    steer = list(steer_ids)
    ablate = list(ablate_ids)
    threshold = getattr(sae, "threshold", None)
    input_bias = sae.b_dec * float(getattr(sae.cfg, "apply_b_dec_to_input", False))
    return SaeSlice(
        d_model=d_model,
        d_sae=d_sae,
        steer_ids=steer_ids,
        steer_rows=sae.W_dec[steer].detach().clone(),
        ablate_ids=ablate_ids,
        enc_cols=sae.W_enc[:, ablate].detach().clone(),
        enc_bias=sae.b_enc[ablate].detach().clone(),
        dec_rows=sae.W_dec[ablate].detach().clone(),
        threshold=None if threshold is None else threshold[ablate].detach().clone(),
        input_bias=input_bias.detach().clone(),
    )
