"""Per-latent threshold calibration: probabilistic bisection for the boost where answers score 30/100.

First-attempt scores fall as the boost grows (coherent → off-topic → gibberish). The paper looks,
per latent, for the boost at which the mean first-attempt score is 30/100, with the
probabilistic bisection algorithm (Waeber, Frazier & Henderson 2013) on a grid (§2.2 and
App. A.1.4): query the posterior median, observe a noisy score, move probability mass to the
side the score points to, weighted by how confident that score is.

Many latents are calibrated together: each step asks `score_fn` for one score per latent, so a
chapter can run the whole step as one batched generation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["Bisection", "Query", "Calibration", "calibrate", "trial_seed", "boost_prior"]

GRID_POINTS = 10_000
UPDATE_WEIGHT = 5.0  # pseudo-counts a score adds to the Beta belief about the mean score


class Bisection:
    """Posterior over one latent's threshold boost, on a grid."""

    def __init__(self, prior: tuple[float, float], bounds: tuple[float, float],
                 target: float = 0.3, n_grid: int = GRID_POINTS):
        low, high = bounds
        mean, std = prior
        if not low < high:
            raise ValueError(f"bounds must be increasing, got {bounds}")
        if std <= 0:
            raise ValueError(f"prior std must be positive, got {std}")
        if not 0.0 < target < 1.0:
            raise ValueError(f"target must lie in (0, 1), got {target}")
        self.target = target
        self.grid = np.linspace(low, high, n_grid)
        self.log_density = stats.norm.logpdf(self.grid, mean, std)
        self._normalise()

    def _normalise(self):
        self.log_density -= np.logaddexp.reduce(self.log_density)

    def median(self) -> float:
        cdf = np.cumsum(np.exp(self.log_density))
        return float(self.grid[np.searchsorted(cdf, 0.5)])

    def confidence(self, score: float) -> tuple[int, float]:
        """Direction (+1: the threshold is at a higher boost) and its probability."""
        belief = stats.beta(0.5 + UPDATE_WEIGHT * score, 0.5 + UPDATE_WEIGHT * (1 - score))
        below = float(belief.cdf(self.target))
        direction, p = (1, 1 - below) if score >= self.target else (-1, below)
        if p < 0.5:
            direction, p = -direction, 1 - p
        return direction, min(max(p, 1e-12), 1 - 1e-12)

    def update(self, boost: float, score: float) -> None:
        """Fold in one observed mean first-attempt score (0–1) at `boost`."""
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scores are fractions of 100, got {score}")
        direction, p = self.confidence(score)
        higher = self.grid > boost
        at = np.isclose(self.grid, boost)
        toward = higher if direction > 0 else (~higher & ~at)
        self.log_density += np.where(toward, np.log(p), np.log(1 - p))
        self.log_density[at] = np.log(np.sqrt(p * (1 - p)))
        self._normalise()


@dataclass(frozen=True)
class Query:
    """One generation the calibration needs: latent `latent_id` at `boost`, step `step`."""

    latent_id: int
    boost: float
    step: int
    sample: int


@dataclass
class Calibration:
    latent_id: int
    threshold: float
    trace: list[dict] = field(default_factory=list)  # per step: boost, score, median after


def trial_seed(seed: int, *keys) -> int:
    """A seed for one (latent, step, sample), the same however the work is batched."""
    blob = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha1(blob).digest()[:4], "little") % 1_000_000


def boost_prior(median_norm: float, decoder_norm: float) -> tuple[tuple[float, float],
                                                                   tuple[float, float]]:
    """Prior (mean, std) and bounds for models without the paper's priors (e.g. the embedded one).

    The scale is the boost that adds a vector as long as a typical residual at the steering layer
    (`median_norm / decoder_norm`). Chapter 1 shows answers of the embedded model tipping over at
    about half that, so the prior is centred at half the scale with that std, bounded at 0 and 2×.
    """
    if median_norm <= 0 or decoder_norm <= 0:
        raise ValueError("norms must be positive")
    scale = median_norm / decoder_norm
    return (scale / 2, scale / 2), (0.0, 2 * scale)


def calibrate(
    latent_ids: Sequence[int],
    score_fn: Callable[[list[Query]], Sequence[float]],
    *,
    prior: tuple[float, float],
    bounds: tuple[float, float],
    target: float = 0.3,
    n_steps: int = 10,
    samples_per_step: int = 1,
    progress: bool = True,
) -> dict[int, Calibration]:
    """Calibrate every latent at once; `score_fn` returns one first-attempt score (0–1) per query.

    Each step sends one query per latent and sample to `score_fn` in a single call (one batched
    generation); a latent's score for the step is the mean over its samples. Thresholds are
    posterior medians rounded to 2 decimals, as upstream.
    """
    if not latent_ids:
        raise ValueError("no latents to calibrate")
    if len(set(latent_ids)) != len(latent_ids):
        raise ValueError("latent ids must be unique")
    from tqdm import tqdm

    posteriors = {k: Bisection(prior, bounds, target) for k in latent_ids}
    traces: dict[int, list[dict]] = {k: [] for k in latent_ids}
    for step in tqdm(range(n_steps), desc="calibrating", unit="step", disable=not progress):
        queries = [Query(k, posteriors[k].median(), step, s)
                   for k in latent_ids for s in range(samples_per_step)]
        scores = list(score_fn(queries))
        if len(scores) != len(queries):
            raise RuntimeError(f"score_fn returned {len(scores)} scores for {len(queries)} queries")
        for k in latent_ids:
            mine = [sc for q, sc in zip(queries, scores) if q.latent_id == k]
            boost = queries[[q.latent_id for q in queries].index(k)].boost
            score = float(np.mean(mine))
            posteriors[k].update(boost, score)
            traces[k].append({"step": step, "boost": boost, "score": score,
                              "median": posteriors[k].median()})
    return {k: Calibration(k, round(posteriors[k].median(), 2), traces[k]) for k in latent_ids}
