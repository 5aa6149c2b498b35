"""Per-token detector activations around restarts: boundaries, alignment, region means."""

from __future__ import annotations

import numpy as np
import pytest

from esr_utils.detectors import answer_token_stats
from esr_utils.episodes import Episode, aligned, detector_episodes, ema, region_means, restart_char


def _record(response, attempts, **extra):
    return {"prompt": "How do I swim?", "response": response,
            "attempts": [{"text": t, "score": 50} for t in attempts], **extra}


def test_restart_char_finds_the_second_attempt():
    r = _record("Bananas are yellow. Wait, back to swimming: kick.",
                ["Bananas are yellow.", "Wait, back to swimming: kick."])
    assert restart_char(r) == r["response"].index("Wait")
    assert restart_char(_record("Kick.", ["Kick."])) is None
    assert restart_char(_record("abc", ["abc", "not in the text"])) is None


def _episode(values, restart):
    return Episode({}, [""] * len(values), np.asarray(values, float), restart)


def test_alignment_puts_the_restart_at_offset_zero():
    offsets, rows = aligned([_episode([1, 2, 3, 4], 2), _episode([5, 6], None),
                             _episode([7, 8, 9], 1)], window=2)
    assert offsets.tolist() == [-2, -1, 0, 1]
    assert rows.shape == (2, 4)
    np.testing.assert_array_equal(rows[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(rows[1], [np.nan, 7, 8, 9])


def test_region_means_exact():
    means = region_means([_episode([2, 2, 0, 0], 2), _episode([4, 0], 1), _episode([1, 3], None)])
    assert means["off-topic (before restart)"].mean == pytest.approx(3.0)
    assert means["after restart"].mean == pytest.approx(0.0)
    assert means["no restart (baseline)"].mean == pytest.approx(2.0)
    assert means["no restart (baseline)"].n == 1


def test_ema_known_answer():
    assert ema([4.0, 0.0, 0.0], alpha=0.5).tolist() == [4.0, 2.0, 1.0]


def test_unsteered_read_back_matches_the_search_statistics(tiny_model, tiny_sae):
    r = _record("Kick your legs and breathe out slowly.", ["Kick your legs and breathe out."],
                latent_id=None, boost=0.0, ablate=[])
    latents = [1, 4, 9]
    (e,) = detector_episodes(tiny_model, tiny_sae, [r], latents, steered=False)
    stats = answer_token_stats(tiny_model, tiny_sae, [r["prompt"]], [r["response"]], layer=2,
                               progress=False)
    assert len(e.activation) == stats.n_tokens[0] and e.restart is None
    assert e.activation.mean() == pytest.approx(stats.mean[0, latents].sum(), rel=1e-4)
    steered = dict(r, latent_id=3, boost=5.0)
    (plain,) = detector_episodes(tiny_model, tiny_sae, [dict(r, latent_id=3, boost=0.0)],
                                 latents)
    (pushed,) = detector_episodes(tiny_model, tiny_sae, [steered], latents)
    np.testing.assert_allclose(plain.activation, e.activation, rtol=1e-5, atol=1e-6)
    assert not np.allclose(pushed.activation, e.activation)
