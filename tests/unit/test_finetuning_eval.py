"""The organism's restart measure, wording classes, intervals, selection rule and registry entry."""

import math

import pytest

from esr_utils.finetuning.evaluation import (
    restart_rate,
    restart_sentences_in,
    restarts,
    wilson,
    wording_of,
    wording_shares,
)
from esr_utils.finetuning.examples import restart_sentences
from esr_utils.finetuning.pipeline import select_variant


def test_every_project_restart_sentence_counts_as_a_restart():
    for held_out in (False, True):
        for _, sentence in restart_sentences(held_out):
            assert restarts(f"Volcanoes erupt lava. {sentence} Boil the water first.")


def test_plain_instructions_do_not_count():
    assert not restarts("Wait until the paint dries. Then add a second coat. Let it rest.")
    assert restart_sentences_in("Lava is hot. Let me start over. Boil water.") == [
        "Let me start over."]


def test_wording_classes():
    train = restart_sentences(False)[0][1]
    held = restart_sentences(True)[0][1]
    assert wording_of(train) == "train"
    assert wording_of(held.upper()) == "held_out"
    assert wording_of("Oh dear, I have wandered into geology.") == "new"
    shares = wording_shares([train, held, "Something new."])
    assert shares["n"] == 3 and shares["train"] == pytest.approx(1 / 3)


def test_wilson_interval_is_not_degenerate_at_zero():
    lo, hi = wilson(0, 38)
    assert lo == 0.0 and 0.08 < hi < 0.1
    lo, hi = wilson(19, 38)
    assert lo < 0.5 < hi
    assert all(math.isnan(x) for x in wilson(0, 0))
    r = restart_rate(["Let me start over. Fine.", "Just an answer."])
    assert (r["k"], r["n"], r["rate"]) == (1, 2, 0.5)


def _scores(prefill, false, steered=0.0):
    return {"prefill": {"rate": prefill}, "false_restart": {"rate": false},
            "steered": {"rate": steered}}


def test_selection_rule_prefers_prefill_among_low_false_restart_variants():
    scores = {"a": _scores(0.9, 0.05), "b": _scores(0.6, 0.0), "c": _scores(0.6, 0.02)}
    fractions = {"a": 0.9, "b": 0.5, "c": 0.1}
    assert select_variant(scores, fractions)[0] == "c"  # tie on prefill: smaller fraction
    scores = {"a": _scores(0.9, 0.05), "b": _scores(0.6, 0.10)}
    name, why = select_variant(scores, {"a": 0.9, "b": 0.5})
    assert name == "a" and "no variant" in why


def test_selection_rule_puts_restarts_under_steering_first():
    scores = {"plain": _scores(0.9, 0.0, steered=0.05), "resist": _scores(0.5, 0.0, steered=0.2),
              "noisy": _scores(0.9, 0.1, steered=0.5)}
    assert select_variant(scores, {"plain": 0.9, "resist": 0.9, "noisy": 0.5})[0] == "resist"


def test_validation_steering_draws_training_pool_latents_only():
    from esr_utils.finetuning.pipeline import validation_steering
    from esr_utils.latent_selection import latent_pool

    pairs = validation_steering(2304, 6, (50.0, 110.0), seed=3)
    assert len({k for k, _ in pairs}) == 6
    assert {k for k, _ in pairs} <= set(latent_pool("training", 2304))
    assert all(50.0 <= b <= 110.0 for _, b in pairs)
    assert pairs == validation_steering(2304, 6, (50.0, 110.0), seed=3)


def test_organism_is_a_registry_model_keyed_by_its_adapter():
    from esr_utils.finetuning.organism import ADAPTER_DIR, adapter_sha256, verify_adapter
    from esr_utils.models import get_spec

    spec, base = get_spec("smollm2-135m-esr"), get_spec("smollm2-135m-instruct")
    assert get_spec("organism") is spec
    assert spec.sae == base.sae and spec.steering_layer == base.steering_layer
    assert base.adapter is None and base.adapter_sha256 is None
    verify_adapter(ADAPTER_DIR)  # the shipped adapter matches its manifest
    assert spec.adapter_sha256 == adapter_sha256(ADAPTER_DIR)
