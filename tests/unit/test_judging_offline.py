"""The offline judge: pattern segmentation, the learned restart detector on hand-written
responses, scoring with the bundled embedding model, the penalties, and the fits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esr_utils.judging import JudgeInput, OfflineJudge, strict_offline_judge
from esr_utils.judging.embedding import language_quality, repetition
from esr_utils.judging.offline_fit import split_prompts
from esr_utils.judging.restart_detector import WEIGHTS_PATH, RestartDetector
from esr_utils.judging.score_scale import ScoreScale, fit_logistic
from esr_utils.judging.segmenting import group_attempts, is_restart, split_attempts, split_sentences
from esr_utils.judging.tree_ensemble import TreeEnsemble, fit_trees

FRACTIONS = ("To add two fractions, first find a common denominator. Rewrite each fraction with "
             "that denominator, add the numerators, and keep the denominator. Finally, simplify "
             "the result if the numerator and denominator share a factor.")
HAWAII = ("Hawaii's beaches are famous for their golden sand and turquoise water. Visitors "
          "often plan a day of snorkelling, followed by a sunset luau with live music.")


@pytest.mark.parametrize("text, expected", [
    ("Apple! No, wait! Orange", ["Apple!", "Orange"]),
    (f"{HAWAII} Wait, that's not right. {FRACTIONS}", [HAWAII, FRACTIONS]),
    (f"{HAWAII}\n\nLet me try again.\n\n{FRACTIONS}", [HAWAII, FRACTIONS]),
    (f"{HAWAII} Actually, I made a mistake. {FRACTIONS}", [HAWAII, FRACTIONS]),
    (f"{HAWAII} I'd like to revise my answer. {FRACTIONS}", [HAWAII, FRACTIONS]),
    (f"{HAWAII} **Oops, I got off topic.** {FRACTIONS}", [HAWAII, FRACTIONS]),
    (f"{HAWAII} Let’s start over. {FRACTIONS}", [HAWAII, FRACTIONS]),  # curly apostrophe
    (f"{HAWAII} Wait, that's wrong. {HAWAII} Scratch that. {FRACTIONS}",
     [HAWAII, HAWAII, FRACTIONS]),
])
def test_explicit_restarts_split_and_are_dropped(text, expected):
    assert split_attempts(text) == expected


@pytest.mark.parametrize("sentence", [
    "Wait until the glue dries before you sand it.",
    "Actually, this is the step most people skip.",
    "If you make a mistake, you can simply start over.",
    "Let me know if you want to try again with other numbers.",
    "Let's try it again with a bigger number: 3/4 + 1/8.",
    "Wait, there's one more thing to keep in mind.",
    "That is not the only way to do it.",
])
def test_ordinary_wait_and_actually_sentences_are_not_restarts(sentence):
    """Elaboration and instructions that use restart words must not split an answer."""
    assert not is_restart(sentence)
    assert split_attempts(f"{FRACTIONS} {sentence} {FRACTIONS}") == [
        f"{FRACTIONS} {sentence} {FRACTIONS}"]


def test_leading_restart_gives_one_attempt_and_restart_only_gives_none():
    """As the paper's judge is told: a leading "let me try again" is not an empty attempt."""
    assert split_attempts(f"Let me try again. {FRACTIONS}") == [FRACTIONS]
    assert split_attempts("Wait, that's not right.") == []
    assert split_attempts("") == []


def test_repetition_is_zero_for_prose_and_high_for_loops():
    assert repetition(FRACTIONS) < 0.05
    assert repetition("denominator " * 40) > 0.9


@pytest.fixture(scope="module")
def judge():
    return OfflineJudge()


def test_long_restart_sentence_keeps_its_content():
    """A restart sentence with content stays as the start of the attempt it opens."""
    text = ("Hawaii is sunny. Wait, no, to add two fractions you first find a common "
            "denominator for both of them.")
    spans = split_sentences(text)
    assert group_attempts(text, spans, [False, True]) == [[0], [1]]
    assert group_attempts("A b. Wait. C d.", split_sentences("A b. Wait. C d."),
                          [False, True, False]) == [[0], [2]]


def test_language_quality_tells_prose_from_word_salad():
    assert language_quality(FRACTIONS) == 1.0
    assert language_quality("from(By WorkGeneron/BOREGRE ##ity)Nex/ tor_ation") < 0.5


def test_on_topic_answer_scores_high_and_off_topic_low(judge):
    prompt = "Explain how to add two fractions."
    on = judge.judge(JudgeInput(prompt, FRACTIONS))
    off = judge.judge(JudgeInput(prompt, HAWAII))
    assert on.ok and len(on.attempts) == 1 and len(off.attempts) == 1
    assert on.scores[0] > 70 > 30 > off.scores[0]


def test_self_correction_is_two_attempts_that_improve(judge):
    """The Fig. 1 pattern: off-topic, explicit restart, on-topic → ESR."""
    verdict = judge.judge(JudgeInput("Explain how to add two fractions.",
                                     f"{HAWAII} Wait, I made a mistake! {FRACTIONS}",
                                     label="Hawaiian tourism"))
    assert [a.text for a in verdict.attempts] == [HAWAII, FRACTIONS]
    assert verdict.scores[1] > verdict.scores[0] + 40


def test_looping_on_topic_words_is_penalised(judge):
    """Degenerate repetition of prompt words is not an answer, however similar it looks."""
    prompt = "Explain how to add two fractions."
    loop = "To add fractions, " + "fractions " * 40
    assert judge.judge(JudgeInput(prompt, loop)).scores[0] < 20


def test_word_salad_after_an_on_topic_clause_scores_low(judge):
    """The first words must not decide: relevance and language are read over the whole attempt
    (a steered answer like this scored 88.9 before)."""
    prompt = "How do you give an effective presentation?"
    salad = ("To give an effective presentation, Many people from(By WorkGeneron/BOREGRE "
             "intoSTRUCT/ationPre(sen tingWORK_ers/Gen#eral ofBOR(EGRE prES/enta)tion Work"
             "GENeron/ByBy from(By")
    verdict = judge.judge(JudgeInput(prompt, salad))
    assert verdict.ok and verdict.scores[0] <= 20


def test_offline_judge_never_raises(judge):
    """A judge failure inside the loop becomes a recorded error."""

    class Broken:
        def encode(self, *args, **kwargs):
            raise RuntimeError("embedding backend exploded")

    broken = OfflineJudge(embedder=Broken())
    (verdict,) = broken.judge_many([JudgeInput("p", "some response")])
    assert not verdict.ok and "exploded" in verdict.error and verdict.raw == "some response"


def test_strict_variant_only_splits_at_the_paper_examples(judge):
    strict = strict_offline_judge(embedder=judge.embedder)
    text = f"{HAWAII} Oops, I got off topic. {FRACTIONS}"
    assert len(strict.segment(text)) == 1
    assert len(strict.segment(f"{HAWAII} Let me try again. {FRACTIONS}")) == 2


def test_logistic_fit_recovers_a_known_boundary():
    """The score scale must come from data: simulate two classes with a known midpoint."""
    # equal-variance Gaussian classes: the exact posterior is logistic with slope Δμ/σ² = 17.8
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.2, 0.15, 2000), rng.normal(0.6, 0.15, 2000)])
    y = np.array([0] * 2000 + [1] * 2000)
    slope, intercept = fit_logistic(x, y)
    scale = ScoreScale(slope, intercept)
    assert scale.midpoint == pytest.approx(0.4, abs=0.02)
    assert slope == pytest.approx(0.4 / 0.15**2, rel=0.15)


def test_tree_ensemble_learns_an_interaction_and_matches_scikit_learn():
    """A planted "both cues together" rule (no linear model can fit it), recovered by the trees;
    the numpy copy gives scikit-learn's probabilities and survives a JSON round trip."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 3))
    y = ((X[:, 0] > 0.5) & (X[:, 1] < 0.0)).astype(float)
    trees = fit_trees(X, y, seed=0, max_iter=60)
    Z = rng.normal(size=(500, 3))
    truth = (Z[:, 0] > 0.5) & (Z[:, 1] < 0.0)
    assert ((trees.probabilities(Z) >= 0.5) == truth).mean() > 0.97
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    copy = TreeEnsemble.from_dict(TreeEnsemble.from_sklearn(model).to_dict())
    assert copy.probabilities(Z) == pytest.approx(model.predict_proba(Z)[:, 1], abs=1e-6)
    assert TreeEnsemble.from_sklearn(model).decision(np.zeros((0, 3))).shape == (0,)


def test_boundary_features_see_the_topic_shift_at_a_restart(judge):
    """Across "Hawaii. Wait, that's not right. Fractions." the two sides differ and relevance
    rises; inside one answer the neighbours of a sentence cohere."""
    from esr_utils.judging.boundary_features import FEATURE_NAMES, sentence_features

    prompt = "Explain how to add two fractions."
    restart = [*judge.sentences(HAWAII), "Wait, that's not right.", *judge.sentences(FRACTIONS)]
    X = sentence_features(prompt, restart, judge.embedder)
    col = {name: X[:, k] for k, name in enumerate(FEATURE_NAMES)}
    assert X.shape == (len(restart), len(FEATURE_NAMES))
    r = 2  # the restart sentence
    assert col["rel_rise_w1"][r] > 0.3 and col["sides_cos_w2"][r] < 0.3
    assert col["bridge"][r] < col["bridge"][r + 1] and col["pattern"][r] == 1.0
    assert col["has_before"][0] == 0.0 and col["has_after"][-1] == 0.0
    assert sentence_features(prompt, [], judge.embedder).shape == (0, len(FEATURE_NAMES))


def test_shipped_detector_matches_its_checksum_and_a_wrong_one_names_the_fix(tmp_path):
    detector = RestartDetector.load()  # checks WEIGHTS_SHA256
    assert len(detector.trees.roots) > 10 and 0.0 < detector.threshold < 1.0
    bad = tmp_path / "w.json"
    bad.write_text(WEIGHTS_PATH.read_text().replace('"threshold"', '"threshold" ', 1))
    with pytest.raises(ValueError, match="offline_fit"):
        RestartDetector.load(bad)
    assert RestartDetector.load(bad, sha256=None).threshold == detector.threshold


def test_shipped_score_scale_separates_its_classes(judge):
    """On calibration answers, own-prompt relevance maps above 50 and another prompt's below,
    for nearly every answer, and the means land on the score targets (≥ 70, ≤ 30)."""
    from esr_utils.judging.answers import load_answers

    answers = load_answers()
    prompts = list(dict.fromkeys(a["prompt"] for a in answers))
    calib, _ = split_prompts(prompts)
    rows = [a for a in answers if a["prompt"] in calib][:8]
    on = [judge.score(a["prompt"], a["response"]) for a in rows]
    off = [judge.score(calib[(calib.index(a["prompt"]) + 5) % len(calib)], a["response"])
           for a in rows]
    assert sum(x > 50 for x in on) >= 7 and sum(x < 50 for x in off) >= 7
    assert np.mean(on) >= 70 and np.mean(off) <= 30


def test_prompt_split_is_disjoint_and_complete():
    prompts = [f"p{i}" for i in range(38)]
    calib, valid = split_prompts(prompts)
    assert not set(calib) & set(valid) and sorted(calib + valid) == sorted(prompts)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([
    "Wait, that's not right.", "Let me try again.", "Add the numerators.", "Wait until it dries.",
    "1.", "**Step two:**", "Hawaii is sunny!", "No, wait!", "\n\n", " ", "Why?", "keep going",
    "Actually, I made a mistake.", ":"]), max_size=12), st.sampled_from([" ", "\n", ""]))
def test_fuzz_segmentation_keeps_text_in_order(pieces, sep):
    """Attempts are non-empty pieces of the response, in order, and never overlap."""
    text = sep.join(pieces)
    attempts = split_attempts(text)
    position = 0
    for attempt in attempts:
        assert attempt and attempt == attempt.strip()
        found = text.find(attempt, position)
        assert found >= position
        position = found + len(attempt)
