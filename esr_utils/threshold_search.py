"""Threshold search: per latent, the boost at which the mean first-attempt score hits a target.

First-attempt scores fall as the boost grows (coherent → off-topic → gibberish). The paper
looks, per latent, for the boost at which the mean first-attempt score is 30/100 (its §2.2 and
App. A.1.4), with the probabilistic bisection algorithm of Waeber, Frazier & Henderson (2013) on a
grid: query the posterior median, observe a noisy score, and multiply the posterior by `p` on the
side the score points to and by `1 − p` on the other, `p` being how sure that score is.

In this package a *threshold* is always that calibrated boost of one latent. Many latents are
searched together: each step asks `score_fn` for every latent's samples at once, so a chapter
runs the whole step as one batched generation. A final verification scores fresh samples (seeds
the search never used) at each threshold, which is how far a threshold is from its target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

__all__ = ["Bisection", "Query", "ThresholdEstimate", "search_thresholds", "trial_seed",
           "boost_prior", "NOISE_MODELS"]

GRID_POINTS = 10_000
UPDATE_WEIGHT = 5.0  # pseudo-counts one score adds to the Beta belief about the mean score
NOISE_MODELS = ("beta", "normal")


class Bisection:
    """Posterior over one latent's threshold, on a grid of boosts.

    Args:
        prior: (mean, std) of a Gaussian prior, truncated to `bounds`.
        bounds: (low, high) boosts the threshold lies between.
        target: the mean first-attempt score sought, as a fraction (0.3 for 30/100).
        noise: how sure one observed mean score is of its direction. "beta" is the paper code's
            rule (a Jeffreys Beta belief with 5 pseudo-counts per sample); "normal" treats the
            mean of `n` samples as Gaussian around the true mean with standard deviation
            `score_sd / sqrt(n)` (fit `score_sd` to the judge's scores).
    """

    def __init__(self, prior: tuple[float, float], bounds: tuple[float, float],
                 target: float = 0.3, n_grid: int = GRID_POINTS, *, noise: str = "beta",
                 score_sd: float = 0.35):
        low, high = bounds
        mean, std = prior
        if not low < high:
            raise ValueError(f"bounds must be increasing, got {bounds}")
        if std <= 0:
            raise ValueError(f"prior std must be positive, got {std}")
        if not 0.0 < target < 1.0:
            raise ValueError(f"target must lie in (0, 1), got {target}")
        if noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
        if score_sd <= 0:
            raise ValueError(f"score_sd must be positive, got {score_sd}")
        self.target, self.noise, self.score_sd = target, noise, score_sd
        self.grid = np.linspace(low, high, n_grid)
        self.log_density = stats.norm.logpdf(self.grid, mean, std)
        self._normalise()

    def _normalise(self) -> None:
        self.log_density -= np.logaddexp.reduce(self.log_density)

    def median(self) -> float:
        cdf = np.cumsum(np.exp(self.log_density))
        return float(self.grid[min(np.searchsorted(cdf, 0.5), len(self.grid) - 1)])

    def confidence(self, score: float, n_samples: int = 1) -> tuple[int, float]:
        """Direction (+1: the threshold is at a higher boost) and the probability it is right."""
        if self.noise == "beta":
            w = UPDATE_WEIGHT * n_samples
            belief = stats.beta(0.5 + w * score, 0.5 + w * (1 - score))
            below = float(belief.cdf(self.target))
        else:
            below = float(stats.norm.cdf((self.target - score) * np.sqrt(n_samples)
                                         / self.score_sd))
        direction, p = (1, 1 - below) if score >= self.target else (-1, below)
        if p < 0.5:
            direction, p = -direction, 1 - p
        return direction, min(max(p, 1e-12), 1 - 1e-12)

    def update(self, boost: float, score: float, n_samples: int = 1) -> None:
        """Multiply in the likelihood of one observed mean first-attempt score (0–1) at `boost`.

        Grid points on the indicated side get `p`, the others `1 − p`; a grid point exactly at
        `boost` gets their geometric mean, as the paper's code does.
        """
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scores are fractions of 100, got {score}")
        direction, p = self.confidence(score, n_samples)
        at = np.isclose(self.grid, boost, rtol=0, atol=1e-9 * max(1.0, abs(boost)))
        toward = (self.grid > boost) if direction > 0 else (self.grid < boost)
        self.log_density += np.where(at, 0.5 * (np.log(p) + np.log1p(-p)),
                                     np.where(toward, np.log(p), np.log1p(-p)))
        self._normalise()


@dataclass(frozen=True)
class Query:
    """One sample the search needs: latent `latent_id` at `boost`, step `step`, sample `sample`.

    `step` is -1 for the verification samples that follow the search.
    """

    latent_id: int
    boost: float
    step: int
    sample: int


@dataclass
class ThresholdEstimate:
    """One latent's threshold, how it was found (`trace`) and what fresh samples scored there."""

    latent_id: int
    threshold: float
    trace: list[dict] = field(default_factory=list)  # per step: boost, score, n, median after
    verification: list[float] = field(default_factory=list)  # fresh first-attempt scores (0–1)

    @property
    def achieved(self) -> float | None:
        """Mean verification score (0–1), or None without verification."""
        return float(np.mean(self.verification)) if self.verification else None

    def to_dict(self) -> dict:
        return {"latent_id": self.latent_id, "threshold": self.threshold, "trace": self.trace,
                "verification": self.verification}

    @classmethod
    def from_dict(cls, data: dict) -> ThresholdEstimate:
        return cls(int(data["latent_id"]), float(data["threshold"]), list(data["trace"]),
                   [float(s) for s in data.get("verification", [])])


def trial_seed(seed: int, *keys) -> int:
    """A seed for one (latent, step, sample, ...), the same however the work is batched."""
    blob = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha1(blob).digest()[:4], "little") % 1_000_000


def _scores_for(score_fn, queries: list[Query]) -> dict[int, list[float]]:
    scores = list(score_fn(queries))
    if len(scores) != len(queries):
        raise RuntimeError(f"score_fn returned {len(scores)} scores for {len(queries)} queries")
    out: dict[int, list[float]] = {}
    for q, s in zip(queries, scores):
        out.setdefault(q.latent_id, []).append(float(s))
    return out


def search_thresholds(
    latent_ids: Sequence[int],
    score_fn: Callable[[list[Query]], Sequence[float]],
    *,
    prior: tuple[float, float],
    bounds: tuple[float, float],
    target: float = 0.3,
    n_steps: int = 10,
    samples_per_step: int = 1,
    verification_samples: int = 0,
    noise: str = "beta",
    score_sd: float = 0.35,
    progress: bool = True,
) -> dict[int, ThresholdEstimate]:
    """Search every latent's threshold at once; `score_fn` returns one score (0–1) per query.

    Each step sends `samples_per_step` queries per latent to `score_fn` in one call (one batched
    generation) and updates each latent's posterior with the mean of its samples. Thresholds are
    posterior medians rounded to 2 decimals, as in the paper's code. Then, if
    `verification_samples` > 0, one more call scores that many fresh samples per latent at its
    threshold (`Query.step == -1`).
    """
    if not latent_ids:
        raise ValueError("no latents to calibrate")
    if len(set(latent_ids)) != len(latent_ids):
        raise ValueError("latent ids must be unique")
    if samples_per_step < 1:
        raise ValueError(f"samples_per_step must be ≥ 1, got {samples_per_step}")
    posteriors = {k: Bisection(prior, bounds, target, noise=noise, score_sd=score_sd)
                  for k in latent_ids}
    traces: dict[int, list[dict]] = {k: [] for k in latent_ids}
    for step in tqdm(range(n_steps), desc="threshold search", unit="step", disable=not progress):
        boosts = {k: posteriors[k].median() for k in latent_ids}
        got = _scores_for(score_fn, [Query(k, boosts[k], step, s) for k in latent_ids
                                     for s in range(samples_per_step)])
        for k in latent_ids:
            score = float(np.mean(got[k]))
            posteriors[k].update(boosts[k], score, len(got[k]))
            traces[k].append({"step": step, "boost": boosts[k], "score": score,
                              "n": len(got[k]), "median": posteriors[k].median()})
    out = {k: ThresholdEstimate(k, round(posteriors[k].median(), 2), traces[k])
           for k in latent_ids}
    if verification_samples > 0:
        got = _scores_for(score_fn, [Query(k, out[k].threshold, -1, s) for k in latent_ids
                                     for s in range(verification_samples)])
        for k in latent_ids:
            out[k].verification = got[k]
    return out


def boost_prior(unit: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Prior (mean, std) and bounds for models without the paper's priors (the embedded one).

    `unit` is the boost unit (`esr_utils.residual.boost_unit`): the boost that adds a vector as
    long as a typical residual. Chapter 1 shows answers of the embedded model tipping over at
    about half a unit, so the prior is centred there with that std, bounded at 0 and 2 units.

    >>> boost_prior(100.0)
    ((50.0, 50.0), (0.0, 200.0))
    """
    if not unit > 0:
        raise ValueError(f"the boost unit must be positive, got {unit}")
    return (unit / 2, unit / 2), (0.0, 2 * unit)
