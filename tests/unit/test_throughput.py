"""The derived GPU throughput, chapter 2's planned work and its estimate, and the page that shows
them."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import pytest

from esr_utils import throughput
from esr_utils.esr_run import ProtocolSettings
from esr_utils.models import get_spec
from esr_utils.paths import BOOK_DIR
from esr_utils.throughput import JUDGE_PRICES, estimate_chapter2

SETTINGS = ProtocolSettings(n_latents=10, calibration_steps=3, calibration_samples=2,
                            verification_samples=1, n_prompts_per_latent=5, sweep_levels=2,
                            sweep_latents=4, sweep_prompts_per_latent=3, max_new_tokens=64,
                            calibration_max_new_tokens=32)


def test_chapter2_counts_every_condition_at_its_token_limit():
    work = throughput.chapter2_tokens(SETTINGS, get_spec("gemma-2-2b-it"), sweep=True)
    assert work == {"calibration": (70, 32), "steered": (50, 64), "baseline": (50, 64),
                    "sweep": (24, 64)}
    assert "sweep" not in throughput.chapter2_tokens(SETTINGS, get_spec("gemma-2-2b-it"),
                                                     sweep=False)


def test_calibration_samples_can_differ_per_model():
    settings = dataclasses.replace(SETTINGS,
                                   calibration_samples_by_model={"llama-3.3-70b-instruct": 5})
    assert settings.samples_for("llama-3.3-70b-instruct") == 5
    assert settings.samples_for("gemma-2-2b-it") == 2
    work = throughput.chapter2_tokens(settings, get_spec("llama-3.3-70b-instruct"), sweep=False)
    assert work["calibration"] == (10 * (3 * 5 + 1), 32)
    with pytest.raises(ValueError, match="CALIBRATION_SAMPLES_BY_MODEL"):
        ProtocolSettings(calibration_samples_by_model={"gemma-2-2b-it": 0})


def test_throughput_follows_the_gpu_and_the_70b_does_not_fit_one_card():
    small = get_spec("gemma-2-2b-it")
    batch, rate = throughput.decode_tokens_per_second(small)
    faster = dataclasses.replace(throughput.A100_80GB, bandwidth_tb_s=4.0, bf16_tflops=600)
    assert throughput.decode_tokens_per_second(small, faster)[1] > rate
    assert 1 <= batch <= 256
    # more parameters leave less room for rows beside the weights
    assert throughput.decode_tokens_per_second(get_spec("gemma-2-27b-it"))[0] < batch
    assert throughput.decode_tokens_per_second(get_spec("llama-3.3-70b-instruct")) is None


def test_the_estimate_prices_the_judge_and_times_generation():
    spec = get_spec("gemma-2-9b-it")
    judge = "anthropic:claude-haiku-4-5-20251001"
    est = estimate_chapter2(SETTINGS, spec, judge, n_prompts=38, sweep=True)
    tokens = 70 * 32 + (50 + 50 + 24) * 64
    assert est.trials == 194 and est.generated_tokens == tokens
    price_in, price_out = JUDGE_PRICES["claude-haiku-4-5-20251001"]
    judge_in = 70 * (900 + 32) + 124 * (900 + 64)
    assert est.judge_cost_usd == pytest.approx((judge_in * price_in + 194 * 250 * price_out) / 1e6)
    rate = throughput.decode_tokens_per_second(spec)[1]
    assert est.generation_hours == pytest.approx(tokens / rate / 3600, rel=1e-3)
    offline = estimate_chapter2(SETTINGS, get_spec("smollm2-135m-instruct"), "offline",
                                n_prompts=38, sweep=True)
    assert offline.judge_cost_usd == 0 and offline.judge_calls == 0
    assert offline.generation_hours is None  # no derived figure for the embedded model


def test_replays_are_counted_from_the_stored_run_at_its_answer_length():
    spec = get_spec("gemma-2-2b-it")
    run = SimpleNamespace(records={"steered": [{}] * 30}, settings=SETTINGS)
    assert throughput.replay_work(run, spec, 4) == (120, SETTINGS.max_new_tokens)
    assert throughput.replay_work(run, spec, 2, records=5, max_new_tokens=16) == (10, 16)
    unset = SimpleNamespace(records={"steered": [{}] * 3},
                            settings=dataclasses.replace(SETTINGS, max_new_tokens=None))
    assert throughput.replay_work(unset, spec, 1) == (3, spec.max_new_tokens)
    est = throughput.estimate_work({"a": (10, 16), "b": (0, 64)}, spec, "offline")
    assert (est.trials, est.generated_tokens, est.judge_calls) == (10, 160, 0)
    with pytest.raises(ValueError, match="at least one condition"):
        throughput.estimate_work({}, spec, "offline")


def test_the_running_page_shows_the_current_table():
    page = (BOOK_DIR / "running_the_paper_profile.md").read_text()
    shown = re.search(r"<!-- wall-time table.*?-->\n(.*?)\n<!-- end of wall-time table -->",
                      page, re.S)
    assert shown, "the page lost its wall-time table markers"
    assert shown.group(1) == throughput.wall_time_table(), (
        "the table is out of date: regenerate it with python -m esr_utils.throughput")
