"""The offline judge's labelled set, its family split, the validation arithmetic, the learned
detector on restarts written for this test (not in any training family), and the layout."""

from __future__ import annotations

import pytest

from esr_utils.judging import Attempt, JudgeInput, OfflineJudge, Verdict
from esr_utils.judging.evalset import CLASSES, build_eval_set
from esr_utils.judging.offline_fit import family_folds
from esr_utils.judging.phrase_families import NEGATIVE_FAMILIES, RESTART_FAMILIES, topic_of
from esr_utils.judging.segmenting import split_sentences
from esr_utils.judging.validation import accuracy_table, item_rows

ANSWERS = [
    {"prompt": "Explain how to add two fractions.",
     "response": "Find a common denominator. Add the numerators. Simplify the result."},
    {"prompt": "How do you make a good cup of coffee?",
     "response": "Grind fresh beans. Heat water to just below boiling. Brew for four minutes."},
    {"prompt": "Explain how to change a bike tire.",
     "response": "Remove the wheel. Lever the tire off the rim. Fit the new tube and inflate it."},
]


def test_topic_of_turns_prompts_into_phrases():
    assert topic_of("Explain how to add two fractions.") == "how to add two fractions"
    assert topic_of("How do you make a good cup of coffee?") == "how to make a good cup of coffee"


def test_labelled_set_marks_exactly_the_inserted_restart_sentences():
    items = build_eval_set(ANSWERS, seed=3)
    assert {i.kind for i in items} == set(CLASSES) - {"model_answer"}  # only when given
    phrases = {p for ps in RESTART_FAMILIES.values() for p in ps}
    for item in items:
        sentences = [item.response[s:e] for s, e in split_sentences(item.response)]
        assert len(sentences) == len(item.restart_sentences)
        multi = item.n_attempts > 1
        # n attempts need at least n − 1 restart sentences, single answers none after the start
        assert sum(item.restart_sentences) >= item.n_attempts - 1
        if not multi and item.kind != "leading_restart":
            assert not any(item.restart_sentences), item
        if item.family in RESTART_FAMILIES:
            assert multi and any(p.split("{")[0][:6] in item.response for p in phrases)
    per_answer = len(RESTART_FAMILIES) + len(NEGATIVE_FAMILIES) + 8
    assert len(items) == per_answer * len(ANSWERS)


def test_families_filter_and_seed_reproduce():
    a = build_eval_set(ANSWERS, seed=5, families=["take_two", "wait_instruction"])
    b = build_eval_set(ANSWERS, seed=5, families=["take_two", "wait_instruction"])
    assert a == b and {i.family for i in a} == {"take_two", "wait_instruction"}


def test_every_family_is_in_exactly_one_fold():
    folds = family_folds(4, seed=0)
    every = [f for fold in folds for f in fold]
    assert len(every) == len(set(every))
    assert set(every) >= set(RESTART_FAMILIES) | set(NEGATIVE_FAMILIES)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


def test_validation_arithmetic_on_hand_made_verdicts():
    items = [i for i in build_eval_set(ANSWERS, seed=0) if i.kind in ("correction", "on_topic")]
    corr = next(i for i in items if i.kind == "correction")
    single = next(i for i in items if i.kind == "on_topic")
    verdicts = {
        "right": Verdict((Attempt("a", 5.0), Attempt("b", 90.0))),
        "wrong way": Verdict((Attempt("a", 90.0), Attempt("b", 5.0))),
        "missed": Verdict((Attempt("a", 50.0),)),
    }
    rows = item_rows([corr] * 3 + [single, single], list(verdicts.values()) + [
        Verdict((Attempt("x", 80.0),)), Verdict((Attempt("x", 80.0), Attempt("y", 1.0)))])
    assert [r["count_ok"] for r in rows] == [True, True, False, True, False]
    assert [r["direction_ok"] for r in rows[:3]] == [True, False, False]
    assert [r["kept_single"] for r in rows[3:]] == [True, False]
    table = {t["kind"]: t for t in accuracy_table(rows, "kind")}
    assert table["correction"]["direction"] == pytest.approx(1 / 3)
    assert table["on_topic"]["kept_single"] == 0.5 and table["on_topic"]["kept_single_n"] == 2


@pytest.fixture(scope="module")
def judge():
    return OfflineJudge()


PROMPT = "Explain how to change a bike tire."
OFF = ("The Roman aqueducts carried water across long distances using gentle slopes. Many of "
       "them still stand in southern France.")
OFF2 = "Their arches were built from stone blocks without mortar."
ON = ("First, remove the wheel from the frame and let out any remaining air. Use tire levers to "
      "pry the tire off the rim, replace the inner tube, and inflate it to the pressure printed "
      "on the tire.")


@pytest.mark.parametrize("restart", [
    # the four kinds of restart that the pattern-only judge missed, in new wordings
    "Apologies, I should be telling you how to change a bike tire.",  # apology naming the question
    "Scrap all of that and begin anew.",  # a "start over"-style restart
    "Ah! The bike tire.",  # a short interjection, then the real question
    "Hmm, I wandered off there. Back to bike tires:",
])
def test_detector_splits_restarts_written_for_this_test(judge, restart):
    verdict = judge.judge(JudgeInput(PROMPT, f"{OFF} {restart} {ON}"))
    assert len(verdict.attempts) == 2, verdict
    assert verdict.scores[1] > verdict.scores[0] + 30


def test_try_again_after_a_second_off_topic_sentence(judge):
    verdict = judge.judge(JudgeInput(PROMPT, f"{OFF} {OFF2} Time for another try. {ON}"))
    assert len(verdict.attempts) == 2 and verdict.scores[1] > verdict.scores[0]


def test_three_attempts_and_a_failed_correction(judge):
    """Off, restart, other off, restart, on: three attempts ending high; on, restart, off: the
    direction goes down."""
    three = judge.judge(JudgeInput(PROMPT, f"{OFF} Sorry, wrong topic. {OFF2} No, that's not "
                                           f"it either. {ON}"))
    assert len(three.attempts) == 3 and three.scores[-1] > three.scores[0] + 30
    worse = judge.judge(JudgeInput(PROMPT, f"{ON} Wait, let me redo that. {OFF}"))
    assert len(worse.attempts) == 2 and worse.scores[-1] < worse.scores[0] - 30


@pytest.mark.parametrize("negative", [
    "Actually, this is the part that takes longest.",
    "Wait until the glue on the patch dries.",
    "Let me explain why the pressure matters.",
    "Sorry to hear your tire went flat again.",
    "If the tube still leaks, start over with a new one.",
    "Hold on to the rim firmly while you lever the tire.",
    "If the bead won't seat, try again with more soapy water.",
])
def test_detector_keeps_hard_negatives_inside_one_answer(judge, negative):
    verdict = judge.judge(JudgeInput(PROMPT, f"{ON} {negative} Finally, refit the wheel."))
    assert len(verdict.attempts) == 1, verdict


def test_judge_module_doctests_pass():
    import doctest

    import esr_utils.judging.embedding
    import esr_utils.judging.score_scale
    import esr_utils.judging.validation

    for module in (esr_utils.judging.embedding, esr_utils.judging.score_scale,
                   esr_utils.judging.validation):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_model_answers_come_from_prompts_outside_the_38_and_splits_are_disjoint():
    from esr_utils.judging.answers import load_model_answers
    from esr_utils.prompts import load_prompts

    train, val = load_model_answers("train"), load_model_answers("val")
    assert len(train) > 100 and len(val) > 20
    assert not {a["prompt"] for a in train} & {a["prompt"] for a in val}
    assert not ({a["prompt"] for a in train + val} & set(load_prompts("eval")))
    with pytest.raises(ValueError, match="'train', 'val' or 'all'"):
        load_model_answers("test")


def test_model_answers_become_single_attempt_items_unchanged():
    extra = [{"prompt": "Explain how to boil an egg.", "response": " Boil water. Add the egg. "}]
    items = build_eval_set(ANSWERS, seed=3, model_answers=extra)
    added = [i for i in items if i.family == "model_answer"]
    assert len(added) == 1 and added[0].response == "Boil water. Add the egg."
    assert added[0].n_attempts == 1 and not any(added[0].restart_sentences)


@pytest.mark.parametrize("prompt,response", [
    # adapted from unsteered answers of the embedded model (chapter 2's no-steering baseline)
    # that the previous detector split into two attempts although nothing in them restarts
    ("How do you properly wash dishes by hand?",
     "The main goal of this method is to reduce the environmental impact while maintaining "
     "convenience. Here's how it can be done:\n\n1. Most appliances have built-in cleaning "
     "products that can clean and polish your kitchen surfaces. You can also use them as an "
     "alternative to using soap or water. \n\n2. **Discolon Detoxion**: Add some vinegar to a "
     "bowl of lukewarm water before washing. This will help remove stains from your food."),
    ("Explain how to organize your email inbox.",
     "Spreading all the information you need can be overwhelming and indecisive. Here's a "
     "step-by-step guide on organizing your email inbox:\n\n1. **Start with the basics**: When "
     "it comes to managing emails, most of them are made up of headers (including email "
     "addresses) which should always remain in your inbox."),
    ("How do you give an effective presentation?",
     "The art of giving a successful presentation. The key lies in crafting the right message "
     "and setting the tone for future collaborations. First and foremost, it's about "
     "understanding your audience. Knowing what you're going to talk about helps keep your "
     "ideas fresh and relevant. Second, practice makes Many people believe that presenting "
     "alone without someone with them doesn't matter"),
])
def test_natural_drift_in_the_models_own_answers_is_not_a_restart(judge, prompt, response):
    assert len(judge.judge(JudgeInput(prompt, response)).attempts) == 1
