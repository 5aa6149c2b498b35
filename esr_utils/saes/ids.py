"""The one check that latent ids exist in an SAE."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["check_latent_ids"]


def check_latent_ids(ids: Iterable[int], d_sae: int) -> list[int]:
    """The ids as ints, in the given order; ValueError naming the valid range if one is outside
    it."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < d_sae]
    if bad:
        raise ValueError(f"latent ids {bad} are out of range: this SAE has latents 0..{d_sae - 1}")
    return ids
