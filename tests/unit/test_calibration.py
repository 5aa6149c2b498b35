"""Probabilistic bisection on synthetic score curves (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from esr_utils.calibration import Bisection, boost_prior, calibrate, trial_seed


def _noisy_curve(true_threshold, seed, noise=0.1, target=0.3, width=None):
    """Mean score falls smoothly with the boost, crossing `target` at `true_threshold`."""
    width = width or true_threshold / 4
    rng = np.random.default_rng(seed)
    shift = np.log(target / (1 - target))

    def score(boost):
        mean = 1 / (1 + np.exp((boost - true_threshold) / width - shift))
        return float(np.clip(mean + rng.normal(0, noise), 0, 1))

    return score


def test_confidence_matches_the_papers_worked_values():
    """The authors' threshold finder (App. A.1.4), target 0.3: s=0 → 0.947 left; 0.2 → 0.663;
    0.5 → 0.837; 0.8 → 0.99."""
    b = Bisection((5, 5), (0, 100))
    assert b.confidence(0.0) == (-1, pytest.approx(0.947, abs=2e-3))
    assert b.confidence(0.2) == (-1, pytest.approx(0.663, abs=2e-3))
    assert b.confidence(0.5) == (1, pytest.approx(0.837, abs=2e-3))
    assert b.confidence(0.8)[0] == 1 and b.confidence(0.8)[1] > 0.98


@pytest.mark.parametrize("true_threshold", [12.0, 30.0, 61.0])
def test_converges_near_the_true_threshold_with_noise(true_threshold):
    curves = {0: _noisy_curve(true_threshold, seed=1)}
    out = calibrate([0], lambda qs: [curves[q.latent_id](q.boost) for q in qs],
                    prior=(25.0, 25.0), bounds=(0.0, 100.0), n_steps=30, progress=False)
    assert out[0].threshold == pytest.approx(true_threshold, rel=0.2)


def test_threshold_respects_bounds():
    """A latent that never degrades pushes the estimate to the upper bound, never past it."""
    out = calibrate([0], lambda qs: [1.0] * len(qs), prior=(10, 10), bounds=(0, 50),
                    n_steps=25, progress=False)
    assert 45 <= out[0].threshold <= 50
    out = calibrate([0], lambda qs: [0.0] * len(qs), prior=(10, 10), bounds=(0, 50),
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
                  progress=False)
    together = calibrate(list(truths), score_fn, **kwargs)
    alone = {k: calibrate([k], score_fn, **kwargs)[k] for k in truths}
    assert {k: c.threshold for k, c in together.items()} == {k: c.threshold for k, c in alone.items()}
    assert len(together[3].trace) == 12


def test_one_call_per_step_with_every_latent():
    calls = []

    def score_fn(queries):
        calls.append(len(queries))
        return [0.5] * len(queries)

    calibrate([1, 2, 3, 4], score_fn, prior=(5, 5), bounds=(0, 20), n_steps=4,
              samples_per_step=3, progress=False)
    assert calls == [12] * 4


def test_bad_input():
    with pytest.raises(ValueError, match="no latents"):
        calibrate([], lambda q: [], prior=(1, 1), bounds=(0, 2))
    with pytest.raises(ValueError, match="increasing"):
        Bisection((1, 1), (5, 5))
    with pytest.raises(ValueError, match="fractions of 100"):
        Bisection((1, 1), (0, 5)).update(1.0, 30.0)
    with pytest.raises(RuntimeError, match="returned 0 scores"):
        calibrate([1], lambda q: [], prior=(1, 1), bounds=(0, 2), progress=False)


def test_prior_from_residual_norms():
    prior, bounds = boost_prior(median_norm=200.0, decoder_norm=0.5)
    assert prior == (200.0, 200.0) and bounds == (0.0, 800.0)
