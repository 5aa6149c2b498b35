"""The offline recovery measure on constructed answers with a known shape."""

from __future__ import annotations

import numpy as np
import pytest

from esr_utils.recovery import Trajectory, choose_tau, recovery_kind, trajectory

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
