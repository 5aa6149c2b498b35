"""Steering and ablation arithmetic, checked on captured activations of a tiny Llama."""

from __future__ import annotations

import pytest
import torch

from esr_utils.generation import tokenize_chats
from esr_utils.saes import slice_sae
from esr_utils.steering import Steering, plan_interventions

PROMPTS = ["Explain how to add two fractions.", "How do you make a good cup of coffee?"]


def _trace(model, rows, sae, capture_layer=None):
    """Logits, and the residual after the steering layer, with `rows` applied at that layer."""
    batch = tokenize_chats(model.tokenizer, PROMPTS[: len(rows)])
    plan = plan_interventions(rows, sae, d_model=model.spec.d_model)
    block = model.layer(model.spec.steering_layer)
    with model.lm.trace(dict(batch)):
        block.output = plan.apply(block.output)
        resid = block.output.save()
        logits = model.lm.lm_head.output.save()
    return logits, resid


def test_zero_boost_is_an_exact_noop_on_logits(tiny_model, tiny_sae):
    """Guards the hook wiring: boost 0 must leave every logit bit-identical."""
    plain, _ = _trace(tiny_model, [Steering(), Steering()], None)
    zero, _ = _trace(tiny_model, [Steering(3, 0.0), Steering(5, 0.0)], tiny_sae)
    assert torch.equal(plain, zero)


def test_boost_adds_exactly_boost_times_decoder_row(tiny_model, tiny_sae):
    """The paper's intervention is h + b·W_dec[latent] on every token, prompt included."""
    _, base = _trace(tiny_model, [Steering(), Steering()], None)
    _, steered = _trace(tiny_model, [Steering(3, 2.5), Steering(7, -4.0)], tiny_sae)
    expected = base.clone()
    expected[0] += 2.5 * tiny_sae.W_dec[3]
    expected[1] += -4.0 * tiny_sae.W_dec[7]
    torch.testing.assert_close(steered, expected, rtol=0, atol=1e-5)


def test_steered_row_does_not_change_unsteered_row(tiny_model, tiny_sae):
    """Per-row independence: an unsteered row in a steered batch matches its solo run."""
    batch_logits, _ = _trace(tiny_model, [Steering(3, 50.0), Steering()], tiny_sae)
    solo_batch = tokenize_chats(tiny_model.tokenizer, PROMPTS[1:])
    with tiny_model.lm.trace(dict(solo_batch)):
        solo = tiny_model.lm.lm_head.output.save()
    n = solo.shape[1]
    torch.testing.assert_close(batch_logits[1, -n:], solo[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(batch_logits[0, -5:],
                              _trace(tiny_model, [Steering()] * 2, None)[0][0, -5:])


def test_ablating_inactive_latent_changes_nothing(tiny_model, tiny_sae):
    """Zero-ablation of a latent that never fires must be a no-op."""
    _, base = _trace(tiny_model, [Steering(), Steering()], None)
    acts = tiny_sae.encode(base)
    inactive = [k for k in range(tiny_sae.cfg.d_sae) if acts[..., k].max() == 0]
    if not inactive:
        # make one latent dead by construction: a hugely negative encoder bias
        sae = type(tiny_sae)(tiny_sae.cfg)
        sae.load_state_dict(tiny_sae.state_dict())
        with torch.no_grad():
            sae.b_enc[0] = -1e6
        inactive, tiny_sae = [0], sae
    _, ablated = _trace(tiny_model, [Steering(ablate=inactive[:1]), Steering()], tiny_sae)
    assert torch.equal(ablated, base)


def test_ablating_active_latent_removes_exactly_its_contribution(tiny_model, tiny_sae):
    """h − f_k(h)·W_dec[k] for each ablated k, with f = encode(h) of the unsteered residual."""
    _, base = _trace(tiny_model, [Steering(), Steering()], None)
    acts = tiny_sae.encode(base)
    active = acts[0].amax(dim=0).topk(2).indices.tolist()
    assert acts[0][..., active].max() > 0
    _, ablated = _trace(tiny_model, [Steering(ablate=active), Steering()], tiny_sae)
    expected = base.clone()
    for k in active:
        expected[0] -= acts[0][:, k : k + 1] * tiny_sae.W_dec[k]
    torch.testing.assert_close(ablated, expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(ablated[1], base[1], rtol=0, atol=0)


def test_slice_equals_full_sae(tiny_model, tiny_sae):
    """Remote runs send only slices; they must act exactly like the full SAE."""
    rows = [Steering(3, 2.0, ablate=(1, 4)), Steering(5, -1.0)]
    _, full = _trace(tiny_model, rows, tiny_sae)
    _, sliced = _trace(tiny_model, rows, slice_sae(tiny_sae, [3, 5], [1, 4]))
    assert torch.equal(full, sliced)


class TestBadInput:
    def test_latent_out_of_range(self, tiny_sae):
        with pytest.raises(ValueError, match="out of range"):
            plan_interventions([Steering(32, 1.0)], tiny_sae, d_model=64)

    def test_sae_width_must_match_model(self, tiny_sae):
        with pytest.raises(ValueError, match="d_in=64 does not match the model's d_model=576"):
            plan_interventions([Steering(1, 1.0)], tiny_sae, d_model=576)

    def test_boost_without_latent(self):
        with pytest.raises(ValueError, match="without a latent_id"):
            Steering(boost=3.0)

    def test_nonfinite_boost(self):
        with pytest.raises(ValueError, match="finite"):
            Steering(1, float("nan"))

    def test_steering_needs_an_sae(self):
        with pytest.raises(ValueError, match="needs an SAE"):
            plan_interventions([Steering(1, 1.0)], None, d_model=64)

    def test_slice_missing_latent(self, tiny_sae):
        with pytest.raises(ValueError, match="lacks latents"):
            plan_interventions([Steering(2, 1.0)], slice_sae(tiny_sae, [3]), d_model=64)
