"""Steering and zero-ablation, one specification per batch row, applied to the residual stream.

For row i with latent j, boost b and ablated set K, the residual `h` after the steering layer
becomes, on every token (prompt included)::

    h_new = h - sum_{k in K} f_k(h) * W_dec[k] + b * W_dec[j],     f = SAE.encode(h)

which is what the paper's steering and zero-ablation (§2.2, App. A.1.3) reduce to; the authors'
code applies it as "add to the latent" and "clamp the latent to 0" with the SAE error added back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from esr_utils.saes import SaeSlice, slice_sae

__all__ = ["Steering", "InterventionPlan", "plan_interventions"]


@dataclass(frozen=True)
class Steering:
    """What happens to one trial's residual stream: steer `latent_id` by `boost`, ablate `ablate`.

    >>> Steering(latent_id=3, boost=4.0).is_noop
    False
    >>> Steering().is_noop
    True
    """

    latent_id: int | None = None
    boost: float = 0.0
    ablate: tuple[int, ...] = field(default=())
    # the steering vector is on while the first `steer_tokens` answer tokens are sampled, then
    # off for new positions (the positions already read keep it); None: on throughout. Ablation
    # is always on.
    steer_tokens: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "ablate", tuple(sorted({int(k) for k in self.ablate})))
        if self.latent_id is None and self.boost != 0.0:
            raise ValueError(f"boost={self.boost} given without a latent_id to steer")
        if self.boost != self.boost or abs(self.boost) == float("inf"):
            raise ValueError(f"boost must be finite, got {self.boost}")
        k = self.steer_tokens
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ValueError(f"steer_tokens must be None or an int ≥ 0, got {k!r}")

    @property
    def is_noop(self) -> bool:
        steers = self.latent_id is not None and self.boost != 0.0 and self.steer_tokens != 0
        return not steers and not self.ablate

    def key(self) -> dict:
        """The fields that identify it in trial ids (`steer_tokens` only when set, so ids of
        trials steered throughout are unchanged)."""
        fields = {"latent_id": self.latent_id, "boost": self.boost, "ablate": self.ablate}
        return fields if self.steer_tokens is None else {**fields,
                                                          "steer_tokens": self.steer_tokens}


@dataclass
class InterventionPlan:
    """Per-row tensors for one batch: an added vector per row and an ablation mask per row."""

    add: Tensor  # [batch, d_model]: boost_i * W_dec[latent_i]
    sae: SaeSlice | None  # rows for ablation (None when no row ablates)
    ablate_mask: Tensor | None  # [batch, n_ablate]: 1 where row i ablates that latent
    # a steering schedule (see `with_schedule`): which positions get `add` in the first forward
    # pass over the whole input [batch, width], and in each later one-token step [batch]
    read_mask: Tensor | None = None
    step_mask: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.add.shape[0]

    def with_schedule(self, read_mask: Tensor, step_mask: Tensor) -> InterventionPlan:
        """The same plan, with `add` only where the masks are 1 (ablation is unchanged)."""
        return InterventionPlan(self.add, self.sae, self.ablate_mask, read_mask, step_mask)

    def apply(self, h: Tensor) -> Tensor:
        """New residual for a batch `h` of shape [batch, seq, d_model]."""
        if h.shape[0] != self.batch_size:
            raise ValueError(f"plan is for {self.batch_size} rows, activations have {h.shape[0]}")
        out = h
        if self.sae is not None:
            acts = self.sae.encode_ablated(h) * self.ablate_mask[:, None, :]
            out = out - (acts @ self.sae.dec_rows).to(h.dtype)
        add = self.add[:, None, :]
        if self.read_mask is not None:
            # the input is read in one pass of its full width; each new token alone after that
            reading = h.shape[1] == self.read_mask.shape[1]
            mask = self.read_mask if reading else self.step_mask[:, None]
            add = add * mask[:, :, None]
        return out + add.to(h.dtype)

    def to(self, device=None, dtype=None) -> InterventionPlan:
        def move(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        return InterventionPlan(
            add=move(self.add),
            sae=None if self.sae is None else self.sae.to(device=device, dtype=dtype),
            ablate_mask=move(self.ablate_mask), read_mask=move(self.read_mask),
            step_mask=move(self.step_mask),
        )


def plan_interventions(rows: Sequence[Steering], sae,
                       d_model: int | None = None) -> InterventionPlan:
    """Build the batch tensors for `rows` from a sae-lens SAE or an `SaeSlice`.

    `sae` may be None only when no row steers or ablates (then `d_model` is required).
    """
    if not rows:
        raise ValueError("no rows to plan interventions for")
    steer_ids = {r.latent_id for r in rows if r.latent_id is not None and r.boost != 0.0}
    ablate_ids = {k for r in rows for k in r.ablate}
    if sae is None:
        if steer_ids or ablate_ids:
            raise ValueError("steering or ablation needs an SAE")
        if d_model is None:
            raise ValueError("d_model is required when there is no SAE")
        return InterventionPlan(torch.zeros(len(rows), d_model), None, None)
    if not isinstance(sae, SaeSlice):
        sae = slice_sae(sae, steer_ids, ablate_ids)
    if d_model is not None and sae.d_model != d_model:
        raise ValueError(
            f"SAE width d_in={sae.d_model} does not match the model's d_model={d_model}: "
            "was this SAE trained on another model or layer?"
        )
    missing = (steer_ids - set(sae.steer_ids)) | (ablate_ids - set(sae.ablate_ids))
    if missing:
        raise ValueError(f"the SAE slice lacks latents {sorted(missing)}: slice with them included")
    add = torch.zeros(len(rows), sae.d_model, dtype=sae.steer_rows.dtype)
    for i, row in enumerate(rows):
        if row.latent_id is not None and row.boost != 0.0:
            add[i] = row.boost * sae.steer_row(row.latent_id)
    if not ablate_ids:
        return InterventionPlan(add, None, None)
    index = {k: n for n, k in enumerate(sae.ablate_ids)}
    mask = torch.zeros(len(rows), len(sae.ablate_ids), dtype=sae.enc_cols.dtype)
    for i, row in enumerate(rows):
        for k in row.ablate:
            mask[i, index[k]] = 1.0
    return InterventionPlan(add, sae, mask)
