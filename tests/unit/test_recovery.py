"""The offline recovery measure on constructed answers with a known shape."""

from __future__ import annotations

import numpy as np
import pytest

from esr_utils.recovery import (
    Trajectory,
    choose_tau,
    recovery_kind,
    recovery_kinds,
    recovery_rates,
    trajectory,
)

PROMPT = "How do you bake bread?"
ON = "Mix the flour and the water."
OFF = "Volcanoes erupt under the sea."


def fake_embed(texts):
    """Unit vectors: the prompt and on-topic sentences along x, off-topic ones along y."""
    rows = [[1.0, 0.0] if ("bread" in t or "flour" in t) else [0.0, 1.0] for t in texts]
    return np.asarray(rows)


@pytest.mark.parametrize("sentences, attempts, kind", [
    ([OFF, OFF, ON, ON, ON, ON], 1, "implicit recovery"),
    ([OFF, OFF, ON, ON, ON, ON], 2, "explicit recovery"),
    ([OFF, OFF, ON, OFF, OFF, OFF], 1, "no recovery"),
    ([ON, ON, OFF, OFF, OFF, OFF], 1, "on topic from the start"),
    ([ON, ON, ON], 1, "on topic from the start"),
    ([OFF, ON], 2, "too short"),
])
def test_shapes_are_classified_as_constructed(sentences, attempts, kind):
    path = trajectory(PROMPT, " ".join(sentences), fake_embed)
    assert len(path.relevance) == len(sentences)
    assert recovery_kind(path, tau=0.5, n_attempts=attempts) == kind


def test_stored_answers_are_classified_with_their_attempt_counts():
    records = [{"prompt": PROMPT, "response": " ".join([OFF, OFF, ON, ON, ON, ON]),
                "attempts": [{}, {}]},
               {"prompt": PROMPT, "response": " ".join([OFF, OFF, ON, ON, ON, ON]),
                "attempts": [{}]},
               {"prompt": PROMPT, "response": " ".join([OFF, ON])},
               {"prompt": PROMPT, "response": " ".join([OFF] * 4), "attempts": None}]
    kinds = recovery_kinds(records, 0.5, fake_embed)
    assert kinds == ["explicit recovery", "implicit recovery", "too short", "no recovery"]
    rates = recovery_rates(kinds)   # "too short" leaves the denominator
    assert [(rates[k].k, rates[k].n) for k in ("explicit recovery", "implicit recovery",
                                                "recovery")] == [(1, 3), (1, 3), (2, 3)]
    assert recovery_rates(["too short"])["recovery"].n == 0


def test_thirds_and_recovery_are_exact():
    path = Trajectory((0.0, 0.1, 0.5, 0.5, 0.8, 1.0))
    assert (path.start, path.end) == (pytest.approx(0.05), pytest.approx(0.9))
    assert path.recovery == pytest.approx(0.85)
    assert trajectory(PROMPT, "", fake_embed).relevance == ()


def test_tau_separates_and_needs_both_kinds():
    assert choose_tau([0.5, 0.6], [0.1, 0.2]) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="on-topic and off-topic"):
        choose_tau([0.5], [])


def test_constructed_cases_have_the_shape_they_claim_and_tau_separates_them():
    from esr_utils.recovery import constructed_cases, tau_from_answers

    records = [{"prompt": PROMPT, "response": "Mix the flour. Knead the flour. Bake the loaf."},
               {"prompt": "How do volcanoes erupt?",
                "response": "Magma rises. Pressure builds. Lava flows out. Ash falls down."}]
    assert tau_from_answers(records, fake_embed) == pytest.approx(0.5)
    cases = constructed_cases(records)
    assert [c["shape"] for c in cases] == ["off→on", "on→on", "off→off"]  # volcano: too short
    assert cases[0]["response"] == "Magma rises. Pressure builds. Mix the flour. Knead the flour."
    for case in cases:
        path = trajectory(case["prompt"], case["response"], fake_embed)
        assert recovery_kind(path, 0.5, 1) == case["expected"]
    with pytest.raises(ValueError, match="at least two different prompts"):
        constructed_cases(records[:1])


# --- the LLM rubric ---------------------------------------------------------------------------

class ScriptedClient:
    """A chat backend that replies from a script and counts its calls."""

    judge_id = "scripted:test"

    def __init__(self, *replies):
        self.replies, self.calls = list(replies), 0

    def complete(self, system, user):
        from esr_utils.judging.clients import ClientError

        self.calls += 1
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise ClientError(str(reply))
        return reply


@pytest.mark.parametrize("raw, grade", [
    ('<json>{"recovery": 8, "kind": "Gradual shift"}</json>', {"recovery": 8,
                                                               "kind": "gradual shift"}),
    ('sure: {"recovery": 3, "kind": "explicit restart"}', {"recovery": 3,
                                                           "kind": "explicit restart"}),
])
def test_rubric_replies_are_read(raw, grade):
    from esr_utils.recovery import parse_rubric

    assert parse_rubric(raw) == grade


@pytest.mark.parametrize("raw", ["no json here", '{"recovery": 11, "kind": "gradual shift"}',
                                 '{"recovery": 5, "kind": "sideways"}', '{"kind": "no recovery"}'])
def test_unreadable_or_out_of_range_rubric_replies_are_errors(raw):
    from esr_utils.recovery import parse_rubric

    assert "error" in parse_rubric(raw)


@pytest.mark.parametrize("grade, kind", [
    ({"recovery": 9, "kind": "explicit restart"}, "explicit recovery"),
    ({"recovery": 7, "kind": "gradual shift"}, "implicit recovery"),
    ({"recovery": 6, "kind": "gradual shift"}, "no recovery"),
    ({"recovery": 10, "kind": "on topic throughout"}, "on topic from the start"),
    ({"error": "failed"}, None),
])
def test_rubric_grades_map_onto_the_offline_kinds(grade, kind):
    from esr_utils.recovery import rubric_kind

    assert rubric_kind(grade) == kind


def test_rubric_caches_good_grades_and_records_failures_without_raising(tmp_path):
    from esr_utils.judging.cache import JudgeCache
    from esr_utils.recovery import RecoveryRubric

    client = ScriptedClient('<json>{"recovery": 8, "kind": "gradual shift"}</json>',
                            RuntimeError("503 from the server"), "garbage",
                            '{"recovery": 2, "kind": "no recovery"}')
    rubric = RecoveryRubric(client, cache=JudgeCache(tmp_path, judge_id="rubric"),
                            max_concurrent=1)
    records = [{"prompt": PROMPT, "response": "a"}, {"prompt": PROMPT, "response": "b"}]
    first = rubric.grade_many(records)
    assert first[0] == {"recovery": 8, "kind": "gradual shift"} and "error" in first[1]
    again = rubric.grade_many(records)  # the good grade from the cache; the garbage not cached
    assert again[0] == first[0] and "error" in again[1] and client.calls == 3
    assert rubric.grade(PROMPT, "b") == {"recovery": 2, "kind": "no recovery"}
    # kinds: each grade as a kind, in order, and None (not a kind) for an answer that fails
    client.replies.append("still garbage")
    more = records + [{"prompt": PROMPT, "response": "c"}]
    assert rubric.kinds(more, progress=False) == ["implicit recovery", "no recovery", None]


def test_the_dry_run_stub_answers_the_rubric_in_its_format():
    from esr_utils.judging.stub_server import hashed_grade
    from esr_utils.recovery import _RUBRIC_TASK, parse_rubric

    grades = [parse_rubric(hashed_grade(_RUBRIC_TASK.format(prompt=PROMPT, response=f"r{i}")))
              for i in range(8)]
    assert all("error" not in g for g in grades) and len({g["kind"] for g in grades}) > 1


def test_an_unexpected_error_in_the_client_is_a_recorded_failure_not_a_crash(tmp_path):
    from esr_utils.judging.cache import JudgeCache
    from esr_utils.judging.tally import call_counts
    from esr_utils.recovery import RecoveryRubric

    class Broken(ScriptedClient):
        judge_id = "scripted:broken"

        def complete(self, system, user):
            raise KeyError("a bug in a client")

    rubric = RecoveryRubric(Broken(), cache=JudgeCache(tmp_path, judge_id="broken"))
    before = call_counts().get("scripted:broken", {}).get("failed", 0)
    (grade,) = rubric.grade_many([{"prompt": PROMPT, "response": "a"}], progress=False)
    assert "error" in grade and "KeyError" in grade["error"]
    assert call_counts()["scripted:broken"]["failed"] == before + 1


def test_the_shared_tau_uses_every_other_unsteered_answer():
    from types import SimpleNamespace

    from esr_utils.recovery import tau_for_run, tau_from_answers

    baseline = [{"prompt": PROMPT if i % 3 else "How do volcanoes erupt?",
                 "response": ON if i % 3 else OFF} for i in range(6)]
    run = SimpleNamespace(records={"baseline": baseline})
    assert tau_for_run(run, fake_embed) == tau_from_answers(baseline[::2], fake_embed)
