"""Off-topic-detector search: derangement, Welch and Cohen helpers, BH, the selection rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from esr_utils.detectors import (
    PAPER_OTDS,
    PAPER_OTDS_NEGATIVE,
    PAPER_OTDS_POSITIVE,
    AnswerStats,
    answer_token_stats,
    benjamini_hochberg,
    cohens_d,
    contrast,
    derangement,
    search_detectors,
    select_detectors,
    shipped_answers,
    welch_t,
)


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_derangement_has_no_fixed_points_and_is_a_permutation(n):
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = derangement(n, rng)
        assert sorted(p.tolist()) == list(range(n))
        assert (p != np.arange(n)).all()


def test_derangement_needs_two_items():
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1, np.random.default_rng(0))


def test_welch_matches_scipy_and_a_hand_computed_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, (12, 3)), rng.normal(0, 3, (20, 3))
    t, p = welch_t(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    np.testing.assert_allclose(t, ref.statistic)
    np.testing.assert_allclose(p, ref.pvalue)
    # by hand: means 2 and 0, sample variances 2 and 2 over 2 samples each:
    # t = 2 / sqrt(2/2 + 2/2) = sqrt(2)
    t1, _ = welch_t(np.array([[1.0], [3.0]]), np.array([[-1.0], [1.0]]))
    assert t1[0] == pytest.approx(np.sqrt(2.0))


def test_welch_and_cohen_are_zero_for_constant_columns():
    a, b = np.zeros((4, 2)), np.zeros((5, 2))
    t, p = welch_t(a, b)
    assert t.tolist() == [0.0, 0.0] and p.tolist() == [1.0, 1.0]
    assert cohens_d(a, b).tolist() == [0.0, 0.0]


def test_cohens_d_known_answer():
    # means 3 and 1, both sample SDs 1 (ddof=1): d = 2
    a = np.array([[2.0], [3.0], [4.0]])
    b = np.array([[0.0], [1.0], [2.0]])
    assert cohens_d(a, b)[0] == pytest.approx(2.0)
    assert cohens_d(b, a)[0] == pytest.approx(-2.0)


def test_benjamini_hochberg_known_answer_and_bounds():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    adj = benjamini_hochberg(p)
    assert adj[0] == pytest.approx(0.01) and adj[1] == pytest.approx(0.04)
    assert adj[2:5] == pytest.approx([0.084] * 3)
    assert (adj >= p).all() and (adj <= 1).all()


def _stats(mean):
    mean = np.asarray(mean, float)
    return AnswerStats(mean=mean, freq=(mean > 0).astype(float), max=mean,
                       n_tokens=np.ones(len(mean)))


def test_contrast_and_selection_find_the_planted_detector():
    rng = np.random.default_rng(3)
    on = rng.gamma(1.0, 0.1, (40, 6))
    off = rng.gamma(1.0, 0.1, (40, 6))
    off[:, 4] += 0.5  # latent 4 fires more off-topic
    off[:, 1] += 0.05  # latent 1 a little more
    on[:, 2] += 0.5  # latent 2 fires more on-topic: d < 0, never selected
    table = contrast(_stats(off), _stats(on))
    assert table["d"][4] > 2 and table["d"][2] < -2
    assert select_detectors(table, 3) == [4] + ([1] if table["d"][1] >= 0.5 and
                                                 table["p_adj"][1] < 0.05 else [])
    assert select_detectors(table, 1) == [4]
    # nothing passes a rule that is too strict: fewer, never padded
    assert select_detectors(table, 3, min_d=100.0) == []
    # alpha = 1 lets every latent with d >= min_d through
    assert set(select_detectors(table, 6, alpha=1.0)) == set(np.flatnonzero(table["d"] >= 0.5))
    with pytest.raises(ValueError, match="N_DETECTORS"):
        select_detectors(table, 0)


def test_shipped_answers_are_on_training_prompts_not_the_38():
    from esr_utils.prompts import load_prompts

    prompts, answers = shipped_answers(20)
    assert len(prompts) == len(answers) == 20 and all(a.strip() for a in answers)
    assert not set(prompts) & set(load_prompts())


def test_paper_sets_are_table_2():
    assert len(PAPER_OTDS) == 26 and len(set(PAPER_OTDS)) == 26
    assert len(PAPER_OTDS_POSITIVE) == 18 and len(PAPER_OTDS_NEGATIVE) == 8
    assert not set(PAPER_OTDS_POSITIVE) & set(PAPER_OTDS_NEGATIVE)


def test_answer_stats_read_only_answer_tokens(tiny_model, tiny_sae):
    """The statistics do not depend on batching (left padding) and count the answer's tokens."""
    prompts = ["Hi?", "How do I boil an egg quickly at home?", "Why?"]
    answers = ["Hello there.", "Boil water.", "Because the sky is blue and wide."]
    one = answer_token_stats(tiny_model, tiny_sae, prompts, answers, layer=1, batch_size=1,
                             progress=False)
    three = answer_token_stats(tiny_model, tiny_sae, prompts, answers, layer=1, batch_size=3,
                               progress=False)
    np.testing.assert_allclose(one.mean, three.mean, atol=1e-5)
    tok = tiny_model.tokenizer
    assert one.n_tokens.tolist() == [len(tok(a, add_special_tokens=False)["input_ids"])
                                     for a in answers]


def test_search_splits_prompts_disjointly(tiny_model, tiny_sae):
    prompts = [f"Question number {i}?" for i in range(8)]
    answers = [f"Answer {i} is about topic {i}." for i in range(8)]
    s = search_detectors(tiny_model, tiny_sae, prompts, answers, n=2, layer=1, progress=False)
    assert not set(s.discovery_prompts) & set(s.confirmation_prompts)
    assert sorted(s.discovery_prompts + s.confirmation_prompts) == sorted(prompts)
    assert len(s.detectors) <= 2 and s.reference.mean.shape[0] == 16
    with pytest.raises(ValueError, match="give more prompts"):
        search_detectors(tiny_model, tiny_sae, prompts[:3], answers[:3], n=2, layer=1,
                         progress=False)
