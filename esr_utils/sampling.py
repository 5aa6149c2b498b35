"""Sampling settings, and the per-row seeded sampler that makes random draws batch-independent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from transformers import LogitsProcessor

from esr_utils.models import ModelSpec

__all__ = ["Sampling", "SeededSampler"]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; the defaults come from the model spec.

    The paper states only the repetition penalty; temperature 0.6 and the 512-token limit
    (256 during calibration) are those of the authors' released code.
    """

    temperature: float = 0.6
    repetition_penalty: float = 1.1
    max_new_tokens: int = 512

    def __post_init__(self):
        for name in ("temperature", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Sampling.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Sampling.{name} must be finite, got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"Sampling.temperature must be ≥ 0 (0 is greedy), got "
                             f"{self.temperature}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"Sampling.repetition_penalty must be > 0 (1 is none), got "
                             f"{self.repetition_penalty}")
        tokens = self.max_new_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"Sampling.max_new_tokens must be an int ≥ 1, got {tokens!r}")

    @classmethod
    def for_model(cls, spec: ModelSpec, *, calibration: bool = False, **overrides) -> Sampling:
        tokens = spec.calibration_max_new_tokens if calibration else spec.max_new_tokens
        base = dict(temperature=spec.temperature, repetition_penalty=spec.repetition_penalty,
                    max_new_tokens=tokens)
        return cls(**{**base, **overrides})

    @classmethod
    def from_record(cls, record, **overrides) -> Sampling:
        """The settings a stored trial record was generated with (its `asdict(Sampling)` keys),
        with `overrides` on top: how replays reuse a run's sampling."""
        base = {f.name: record[f.name] for f in fields(cls)}
        return cls(**{**base, **overrides})


class SeededSampler(LogitsProcessor):
    """Samples each row with its own generator, so a trial's tokens depend only on its own seed.

    It runs after transformers' repetition penalty; it draws exactly one uniform number per row
    per step (inverse-CDF sampling), whatever the batch, and returns logits that are 0 at the
    chosen token and -inf elsewhere, so greedy decoding then picks that token.
    """

    def __init__(self, seeds: Sequence[int], temperature: float,
                 skip: Sequence[int] | None = None):
        """`skip[i]`: draws row i has already used, so a paused row resumes where it stopped."""
        self.seeds = [int(s) for s in seeds]
        self.temperature = float(temperature)
        self.skip = [0] * len(self.seeds) if skip is None else [int(k) for k in skip]
        if len(self.skip) != len(self.seeds) or min(self.skip, default=0) < 0:
            raise ValueError(f"skip needs one count ≥ 0 per seed, got {skip!r} for "
                             f"{len(self.seeds)} seeds")
        self._generators: list[torch.Generator] | None = None

    def _start(self) -> list[torch.Generator]:
        generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        for g, k in zip(generators, self.skip):
            for _ in range(k):  # one scalar draw at a time, exactly as __call__ draws
                torch.rand((), generator=g, dtype=torch.float64)
        return generators

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._generators is None:
            self._generators = self._start()
        if scores.shape[0] != len(self._generators):
            raise RuntimeError(f"sampler has {len(self._generators)} seeds for "
                               f"{scores.shape[0]} rows")
        draws = torch.stack([torch.rand((), generator=g, dtype=torch.float64)
                             for g in self._generators])
        if self.temperature == 0.0:
            choice = scores.argmax(dim=-1).cpu()
        else:
            # inverse CDF in float64, without normalising: scale the draw by the total instead
            # (one pass fewer over the vocabulary than softmax-then-divide, same choice). Every
            # step works in place on the one float64 copy: fresh [rows × vocab] buffers cost
            # more than the arithmetic (64 rows: 88 -> 57 ms a step, bit-identical; see also
            # batching.CPU_BATCH_SIZE)
            logits = scores.detach().to("cpu", torch.float64, copy=True)
            logits -= logits.max(dim=-1, keepdim=True).values
            logits /= self.temperature
            cdf = logits.exp_().cumsum_(dim=-1)
            choice = torch.searchsorted(cdf, draws[:, None] * cdf[:, -1:]).squeeze(1)
            choice = choice.clamp(max=scores.shape[1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0]), choice.to(scores.device)] = 0.0
        return out
