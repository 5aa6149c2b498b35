"""Probabilistic bisection against an exact reference, on simulated judges (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from esr_utils.threshold_search import (
    Bisection,
    ThresholdEstimate,
    boost_prior,
    search_thresholds,
    trial_seed,
)

PRIOR, BOUNDS, TARGET = (40.0, 40.0), (0.0, 160.0), 0.3
SPACING = (BOUNDS[1] - BOUNDS[0]) / (10_000 - 1)


class ExactBisection:
    """Probabilistic bisection (Waeber, Frazier & Henderson 2013) without a grid.

    The posterior is the truncated Gaussian prior times a piecewise-constant weight with a break
    at every queried boost, so its CDF and median are exact (Gaussian CDF and quantile).
    """

    def __init__(self, prior, bounds):
        self.prior = stats.norm(*prior)
        self.edges = [float(bounds[0]), float(bounds[1])]
        self.log_weights = [0.0]

    def _masses(self):
        cdf = self.prior.cdf(self.edges)
        return np.exp(np.array(self.log_weights)) * np.diff(cdf)

    def median(self) -> float:
        masses = self._masses()
        cum = np.cumsum(masses)
        i = int(np.searchsorted(cum, cum[-1] / 2))
        before = cum[i - 1] if i else 0.0
        need = (cum[-1] / 2 - before) / np.exp(self.log_weights[i])
        return float(self.prior.ppf(self.prior.cdf(self.edges[i]) + need))

    def update(self, boost: float, direction: int, p: float) -> None:
        i = int(np.searchsorted(self.edges, boost))
        if self.edges[i] != boost:  # split the segment that holds `boost`
            self.edges.insert(i, boost)
            self.log_weights.insert(i, self.log_weights[i - 1])
        for j in range(len(self.log_weights)):
            right = self.edges[j] >= boost
            self.log_weights[j] += np.log(p if right == (direction > 0) else 1 - p)


def judge_like_scores(threshold, width, rng):
    """First-attempt scores as a judge gives them: bimodal, coherent (≈ 80) or derailed (≈ 5).

    The chance of a coherent answer falls logistically with the boost, so that the *mean* score
    is exactly `TARGET` at `threshold`.
    """
    q_at = (TARGET - 0.05) / (0.80 - 0.05)
    shift = np.log(q_at / (1 - q_at))

    def score(boost, n=1):
        q = 1 / (1 + np.exp((boost - threshold) / width - shift))
        coherent = rng.random(n) < q
        s = np.where(coherent, rng.normal(0.80, 0.10, n), rng.normal(0.05, 0.05, n))
        return float(np.clip(s, 0, 1).mean())

    return score


def run_pair(seed, n_steps=10, samples=1):
    """The grid search and the exact reference, fed the very same observations."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(15, 90)
    score = judge_like_scores(truth, width=truth / 6, rng=rng)
    grid, exact = Bisection(PRIOR, BOUNDS, TARGET), ExactBisection(PRIOR, BOUNDS)
    queries = []
    for _ in range(n_steps):
        b_grid, b_exact = grid.median(), exact.median()
        queries.append((b_grid, b_exact))
        s = score(b_exact, samples)
        grid.update(b_grid, s, samples)
        exact.update(b_exact, *grid.confidence(s, samples))
    return truth, queries, grid.median(), exact.median()


def test_confidence_matches_the_paper_codes_worked_values():
    """The paper code's Beta rule, target 0.3: s=0 → 0.947 left; 0.2 → 0.663; 0.5 → 0.837."""
    b = Bisection((5, 5), (0, 100))
    assert b.confidence(0.0) == (-1, pytest.approx(0.947, abs=2e-3))
    assert b.confidence(0.2) == (-1, pytest.approx(0.663, abs=2e-3))
    assert b.confidence(0.5) == (1, pytest.approx(0.837, abs=2e-3))
    assert b.confidence(0.8)[0] == 1 and b.confidence(0.8)[1] > 0.98


def test_update_multiplies_the_likelihood_into_the_posterior():
    """Guards the bug where the queried grid point's density was overwritten, not multiplied."""
    b = Bisection(PRIOR, BOUNDS, TARGET)
    before = b.log_density.copy()
    boost = float(b.grid[4000])
    b.update(boost, 0.0)
    direction, p = b.confidence(0.0)
    assert direction == -1
    like = np.where(b.grid < boost, np.log(p), np.log(1 - p))
    like[4000] = 0.5 * (np.log(p) + np.log(1 - p))
    expected = before + like
    expected -= np.logaddexp.reduce(expected)
    np.testing.assert_allclose(b.log_density, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("samples", [1, 4])
def test_ten_steps_follow_the_exact_reference(samples):
    """With the paper's 10 steps and the same observations, the grid search asks where the exact
    algorithm asks and ends where it ends, up to the grid's resolution: the typical gap is about
    one grid spacing, the largest (where a posterior is flat around its median) under 1% of the
    bounds' range."""
    runs = [run_pair(seed, samples=samples) for seed in range(60)]
    query_gaps = np.array([max(abs(a - b) for a, b in q) for _, q, _, _ in runs]) / SPACING
    final_gaps = np.array([abs(g - e) for _, _, g, e in runs]) / SPACING
    assert np.median(query_gaps) < 2 and np.median(final_gaps) < 2
    assert final_gaps.max() < 100
    errors = [(abs(g - t), abs(e - t)) for t, _, g, e in runs]
    grid_err, exact_err = np.median(errors, axis=0)
    assert grid_err == pytest.approx(exact_err, rel=0.05)


def test_ten_steps_do_not_requery_an_earlier_boost():
    """Each step must move: a posterior spike left at a queried boost made 99% of 10-step runs
    ask for an earlier boost again, wasting about half the budget."""
    requeried = 0
    for seed in range(200):
        _, queries, _, _ = run_pair(seed)
        boosts = [a for a, _ in queries]
        requeried += any(abs(x - y) < SPACING / 2 for i, x in enumerate(boosts)
                         for y in boosts[:i])
    assert requeried / 200 < 0.02


def test_ten_steps_land_near_the_truth_with_averaged_samples():
    """Four judge-like samples per step: the median relative error after 10 steps is small."""
    errors = [abs(t - truth) / truth for truth, _, t, _ in (run_pair(s, samples=4)
                                                             for s in range(100))]
    assert np.median(errors) < 0.12


def test_threshold_respects_bounds():
    """A latent that never degrades pushes the estimate to the upper bound, never past it."""
    out = search_thresholds([0], lambda qs: [1.0] * len(qs), prior=(10, 10), bounds=(0, 50),
                            n_steps=25, progress=False)
    assert 45 <= out[0].threshold <= 50
    out = search_thresholds([0], lambda qs: [0.0] * len(qs), prior=(10, 10), bounds=(0, 50),
                            n_steps=25, progress=False)
    assert 0 <= out[0].threshold <= 2


def test_batched_equals_one_latent_at_a_time():
    """Seeds depend on (latent, step, sample) only, so batching cannot change thresholds."""
    truths = {3: 20.0, 8: 40.0, 11: 65.0}

    def score_fn(queries):
        out = []
        for q in queries:
            rng = np.random.default_rng(trial_seed(0, q.latent_id, q.step, q.sample))
            mean = 1 / (1 + np.exp((q.boost - truths[q.latent_id]) / 6 + 0.85))
            out.append(float(np.clip(mean + rng.normal(0, 0.1), 0, 1)))
        return out

    kwargs = dict(prior=(30.0, 30.0), bounds=(0.0, 120.0), n_steps=12, samples_per_step=2,
                  verification_samples=3, progress=False)
    together = search_thresholds(list(truths), score_fn, **kwargs)
    alone = {k: search_thresholds([k], score_fn, **kwargs)[k] for k in truths}
    assert {k: c.to_dict() for k, c in together.items()} == \
        {k: c.to_dict() for k, c in alone.items()}
    assert len(together[3].trace) == 12 and len(together[3].verification) == 3


def test_one_call_per_step_then_one_verification_call():
    calls = []

    def score_fn(queries):
        calls.append((len(queries), {q.step for q in queries}))
        return [0.5] * len(queries)

    out = search_thresholds([1, 2, 3, 4], score_fn, prior=(5, 5), bounds=(0, 20), n_steps=4,
                            samples_per_step=3, verification_samples=2, progress=False)
    assert calls == [(12, {0}), (12, {1}), (12, {2}), (12, {3}), (8, {-1})]
    assert out[1].achieved == 0.5
    assert ThresholdEstimate.from_dict(out[1].to_dict()) == out[1]


def test_normal_noise_model_grows_surer_with_more_samples():
    b = Bisection(PRIOR, BOUNDS, TARGET, noise="normal", score_sd=0.35)
    assert b.confidence(0.4, 1)[1] < b.confidence(0.4, 4)[1] < b.confidence(0.4, 16)[1]
    assert b.confidence(0.2, 4)[0] == -1 and b.confidence(0.4, 4)[0] == 1


def test_bad_input():
    with pytest.raises(ValueError, match="no latents"):
        search_thresholds([], lambda q: [], prior=(1, 1), bounds=(0, 2))
    with pytest.raises(ValueError, match="increasing"):
        Bisection((1, 1), (5, 5))
    with pytest.raises(ValueError, match="fractions of 100"):
        Bisection((1, 1), (0, 5)).update(1.0, 30.0)
    with pytest.raises(ValueError, match="noise must be one of"):
        Bisection((1, 1), (0, 5), noise="laplace")
    with pytest.raises(RuntimeError, match="returned 0 scores"):
        search_thresholds([1], lambda q: [], prior=(1, 1), bounds=(0, 2), progress=False)


def test_prior_from_the_boost_unit():
    assert boost_prior(400.0) == ((200.0, 200.0), (0.0, 800.0))
    with pytest.raises(ValueError, match="positive"):
        boost_prior(0.0)
