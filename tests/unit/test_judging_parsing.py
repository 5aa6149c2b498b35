"""The judge-output parser: realistic outputs, broken outputs, and fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esr_utils.judging.parsing import parse_verdict

GOOD = {"attempts": [{"attempt_text": "Standing, sitting, lying.", "score": 0},
                     {"attempt_text": "Probability is favourable over possible outcomes.",
                      "score": 75}]}
GOOD_JSON = json.dumps(GOOD)

REALISTIC = [
    # the format the prompt asks for: feedback, then tagged JSON
    f"The first attempt is about body poses, unrelated to probability. After 'Wait, I made a "
    f"mistake!' the response answers properly.\n\n<json>{GOOD_JSON}</json>",
    # tags with pretty-printed JSON and a trailing comma
    "Feedback: fine.\n<json>\n{\n  \"attempts\": [\n    {\"attempt_text\": \"Standing, sitting, "
    "lying.\", \"score\": 0},\n    {\"attempt_text\": \"Probability is favourable over possible "
    "outcomes.\", \"score\": 75},\n  ]\n}\n</json>",
    # a fenced block instead of tags
    f"Here is my grade.\n```json\n{GOOD_JSON}\n```",
    # bare JSON
    GOOD_JSON,
    # JSON inside prose, with braces in the feedback before it
    f"The response mentions {{curly}} things and a set {{1, 2}}. Grade: {GOOD_JSON} Hope it helps.",
    # the example object quoted in the feedback, the real grade last
    'Unlike {"attempts": [{"attempt_text": "x", "score": 100}]}, this one is: ' + GOOD_JSON,
    # upper-case tags and scores as strings
    '<JSON>{"attempts": [{"attempt_text": "Standing, sitting, lying.", "score": "0"}, '
    '{"attempt_text": "Probability is favourable over possible outcomes.", "score": "75"}]}</JSON>',
]


@pytest.mark.parametrize("raw", REALISTIC)
def test_realistic_outputs_parse_to_the_same_grade(raw):
    """Judges format their JSON in many ways; each must give the same two scores."""
    verdict = parse_verdict(raw)
    assert verdict.ok, verdict.error
    assert verdict.scores == [0.0, 75.0]
    assert verdict.attempts[0].text == "Standing, sitting, lying."


def test_empty_attempts_list_is_a_no_attempt_verdict_not_an_error():
    """"No attempt" is a valid grade (excluded from metrics), distinct from a judge failure."""
    verdict = parse_verdict('Only a clarifying question. <json>{"attempts": []}</json>')
    assert verdict.ok and verdict.attempts == ()


BROKEN = [
    "",
    "   ",
    "I cannot grade this response.",
    "<json>not json at all</json>",
    '<json>{"attempts": [{"attempt_text": "x", "score": 130}]}</json>',
    '<json>{"attempts": [{"attempt_text": "x", "score": -5}]}</json>',
    '<json>{"attempts": [{"attempt_text": "x", "score": "high"}]}</json>',
    '<json>{"attempts": [{"attempt_text": "x"}]}</json>',
    '<json>{"attempts": "two"}</json>',
    '<json>{"grades": [1, 2]}</json>',
    '{"attempts": [{"attempt_text": "x", "score": 10}',  # cut off mid-object
    '<json>{"attempts": [{"attempt_text": "x", "score": NaN}]}</json>',
    '<json>{"attempts": [{"attempt_text": "x", "score": true}]}</json>',
]


@pytest.mark.parametrize("raw", BROKEN)
def test_broken_outputs_become_errors_with_the_raw_text_kept(raw):
    """A malformed grade must be recorded, not raised and not silently read as a score."""
    verdict = parse_verdict(raw, judge="j")
    assert not verdict.ok
    assert verdict.raw == raw and verdict.judge == "j"
    assert verdict.attempts == ()


def test_none_output_is_an_error():
    assert not parse_verdict(None).ok


attempt = st.fixed_dictionaries({
    "attempt_text": st.text(max_size=40),
    "score": st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False)),
})
wrappers = st.sampled_from([
    "<json>{}</json>", "Feedback first.\n<json>\n{}\n</json>\n", "```json\n{}\n```", "{}",
    "Some {{braces}} and \"quotes\" first. {} Trailing words.",
])


@settings(max_examples=120, deadline=None)
@given(attempts=st.lists(attempt, max_size=5), wrapper=wrappers,
       prose=st.text(alphabet=st.characters(blacklist_characters="{}<>`"), max_size=60))
def test_fuzz_any_wrapped_grade_round_trips(attempts, wrapper, prose):
    """Whatever the wrapping and the prose before it, the scores and texts come back exactly."""
    raw = prose + wrapper.replace("{}", json.dumps({"attempts": attempts}), 1)
    verdict = parse_verdict(raw)
    assert verdict.ok, (verdict.error, raw)
    assert verdict.scores == [float(a["score"]) for a in attempts]
    assert [a.text for a in verdict.attempts] == [a["attempt_text"] for a in attempts]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text_never_raises(raw):
    """The parser runs inside the experiment loop: any text at all must give a Verdict."""
    verdict = parse_verdict(raw)
    assert verdict.ok or verdict.error
    assert all(0 <= s <= 100 for s in verdict.scores)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="{}[]\":,0123456789 attemptsscore<json>/`", max_size=200))
def test_fuzz_json_like_noise_never_raises(raw):
    """Brace- and quote-heavy noise is the worst case for the brace matcher."""
    verdict = parse_verdict(raw)
    assert verdict.ok or verdict.error
