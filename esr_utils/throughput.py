"""Expected generation speed of the paper's models on one GPU, derived from their size.

No GPU was available to measure it, so it is derived, and every page that shows it says so. A
decoding step reads every weight and the batch's KV cache from memory, and does 2 FLOPs per
parameter per row; it takes the longer of the two at sustained shares of the data-sheet peaks,
plus a fixed per-step overhead (transformers' generate loop, nnsight's hooks, the sampler). The
batch is the largest that fits beside the weights (`batching.bytes_per_row`, as on a real GPU).
Prompt prefills are left out: a prompt of ~100 tokens costs a few decoding steps.

    python -m esr_utils.throughput             # the table on "Running the paper profile"
    python -m esr_utils.throughput --measure   # the per-step overhead on this machine
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from esr_utils.batching import MAX_AUTO_BATCH_SIZE, bytes_per_row
from esr_utils.esr_run import ProtocolSettings
from esr_utils.models import ModelSpec, get_spec
from esr_utils.preflight import RunEstimate, estimate_run

__all__ = ["Gpu", "A100_80GB", "ARCHITECTURES", "JUDGE_PRICES", "decode_tokens_per_second",
           "chapter2_tokens", "replay_work", "estimate_chapter2", "estimate_work",
           "wall_time_table"]


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    bandwidth_tb_s: float  # data sheet
    bf16_tflops: float  # dense, data sheet


A100_80GB = Gpu("A100 80GB SXM", 80, 2.039, 312)
# what generation sustains of the data-sheet peaks (typical of unfused HF decoding, assumed)
BANDWIDTH_SHARE = 0.6
COMPUTE_SHARE = 0.4
# fixed cost per decoding step besides the matmuls: generate's Python loop, nnsight's hook and the
# per-row sampler. Measured with `measure_step_overhead` on the random-weight stand-ins (real layer
# counts and vocabularies, d_model 64) on 2 CPU cores: 38 ms (Llama-3.1-8B) and 50 ms
# (Gemma-2-2B) per step at batch 1. A GPU host's faster CPU makes it smaller; we keep 40 ms.
STEP_OVERHEAD_S = 0.040

# list prices in USD per million input / output tokens, as Anthropic published them in late 2025;
# they change: check the provider's page before a large run
JUDGE_PRICES = {
    "claude-haiku-4-5-20251001": (1.0, 5.0),
    "claude-sonnet-4-5-20250929": (3.0, 15.0),
}

# from each model's published config.json: (kv heads, head dim, intermediate size, vocabulary)
ARCHITECTURES = {
    "gemma-2-2b-it": (4, 256, 9216, 256000),
    "gemma-2-9b-it": (8, 256, 14336, 256000),
    "gemma-2-27b-it": (16, 128, 36864, 256000),
    "llama-3.1-8b-instruct": (8, 128, 14336, 128256),
    "llama-3.3-70b-instruct": (8, 128, 28672, 128256),
}


def _config(spec: ModelSpec) -> SimpleNamespace:
    kv_heads, head_dim, intermediate, vocab = ARCHITECTURES[spec.name]
    return SimpleNamespace(num_attention_heads=kv_heads, num_key_value_heads=kv_heads,
                           head_dim=head_dim, hidden_size=spec.d_model,
                           num_hidden_layers=spec.n_layers, intermediate_size=intermediate,
                           vocab_size=vocab)


def decode_tokens_per_second(spec: ModelSpec, gpu: Gpu = A100_80GB, *, prompt_tokens: int = 100,
                             max_new_tokens: int = 512) -> tuple[int, float] | None:
    """(batch, generated tokens/s) for `spec` in bf16 on one `gpu`; None if it does not fit."""
    weights = spec.n_params * 2
    room = gpu.memory_gb * 1e9 * 0.8 - weights
    context = prompt_tokens + max_new_tokens
    per_row = bytes_per_row(_config(spec), torch.bfloat16, context)
    batch = min(int(room // per_row), MAX_AUTO_BATCH_SIZE) if room > 0 else 0
    if batch < 1:
        return None
    kv_heads, head_dim, _, _ = ARCHITECTURES[spec.name]
    # on average a step reads the KV cache of half the answer
    kv_read = 2 * spec.n_layers * kv_heads * head_dim * 2 * (prompt_tokens + max_new_tokens / 2)
    memory_s = (weights + batch * kv_read) / (gpu.bandwidth_tb_s * 1e12 * BANDWIDTH_SHARE)
    compute_s = 2 * spec.n_params * batch / (gpu.bf16_tflops * 1e12 * COMPUTE_SHARE)
    return batch, batch / (STEP_OVERHEAD_S + max(memory_s, compute_s))


def chapter2_tokens(settings: ProtocolSettings, spec: ModelSpec, *, sweep: bool,
                    n_prompts: int = 38) -> dict[str, tuple[int, int]]:
    """{condition: (trials, token limit)} that chapter 2 generates for one model (the sweep runs
    for the profile's main model only).

    Calibration counts one answer per latent, step and sample, plus the verification answers;
    regenerations after failed verdicts are not counted.
    """
    s = settings
    calibration_tokens = s.calibration_max_new_tokens or spec.calibration_max_new_tokens
    tokens = s.max_new_tokens or spec.max_new_tokens
    per_latent = min(s.n_prompts_per_latent, n_prompts)
    sweep_latents = min(s.sweep_latents or s.n_latents, s.n_latents)
    work = {
        "calibration": (s.n_latents * (s.calibration_steps * s.samples_for(spec.name)
                                       + s.verification_samples), calibration_tokens),
        "steered": (s.n_latents * per_latent, tokens),
        "baseline": (s.n_latents * per_latent, tokens),
    }
    if sweep:
        work["sweep"] = (s.sweep_levels * sweep_latents * s.sweep_prompts_per_latent, tokens)
    return work


def replay_work(run, spec: ModelSpec, replays: int, *, records: int | None = None,
                max_new_tokens: int | None = None) -> tuple[int, int]:
    """(trials, token limit) of `replays` replays of chapter 2's steered trials (`records` of
    them if given), at the run's answer length unless `max_new_tokens` says otherwise."""
    n = len(run.records.get("steered", [])) if records is None else records
    tokens = max_new_tokens or run.settings.max_new_tokens or spec.max_new_tokens
    return replays * n, tokens


def estimate_chapter2(settings, spec: ModelSpec, judge: str, *, n_prompts: int,
                      sweep: bool) -> RunEstimate:
    """What chapter 2's protocol generates and judges for one model, before it starts."""
    return estimate_work(chapter2_tokens(settings, spec, sweep=sweep, n_prompts=n_prompts),
                         spec, judge)


def estimate_work(work: Mapping[str, tuple[int, int]], spec: ModelSpec, judge: str
                  ) -> RunEstimate:
    """What a chapter generates and judges for one model, `{condition: (trials, token limit)}`
    (`chapter2_tokens`, `replay_work`), before it starts.

    Generation time uses the throughput derived for one A100 80GB (`decode_tokens_per_second`)
    for the paper's models run locally, none otherwise (the embedded model's is in the benchmark
    appendix; NDIF's depends on its queue). The judge's cost uses `JUDGE_PRICES` for its model.
    """
    if not work:
        raise ValueError("estimate_work needs at least one condition: {name: (trials, tokens)}")
    rate = None
    if spec.name in ARCHITECTURES and not spec.ndif_hosted:
        fit = decode_tokens_per_second(spec)
        rate = fit[1] if fit else None
    prices = JUDGE_PRICES.get(judge.rpartition(":")[2], (None, None))
    parts = [estimate_run(trials=n, max_new_tokens=limit, tokens_per_second=rate,
                          price_in_per_mtok=prices[0], price_out_per_mtok=prices[1])
             for n, limit in work.values()]
    llm = not judge.startswith("offline")

    def total(name):
        values = [getattr(p, name) for p in parts]
        return None if None in values else sum(values)

    return RunEstimate(
        trials=total("trials"), generated_tokens=total("generated_tokens"),
        judge_calls=total("judge_calls") if llm else 0,
        judge_input_tokens=total("judge_input_tokens") if llm else 0,
        judge_output_tokens=total("judge_output_tokens") if llm else 0,
        judge_cost_usd=total("judge_cost_usd") if llm else 0.0,
        generation_hours=total("generation_hours"),
        assumptions=(f"{', '.join(f'{k} {n:,} × {t}' for k, (n, t) in work.items())} trials × "
                     f"tokens; " + parts[0].assumptions
                     + ("; tokens/s derived for one A100 80GB, not measured" if rate else "")))


def wall_time_table(gpu: Gpu = A100_80GB) -> str:
    """Markdown: chapter 2 under the `paper` profile, per model: generation on one `gpu` (derived)
    and the judge's cost at list prices (`estimate_chapter2`). Every trial is counted at
    its token limit, so both are upper bounds."""
    from esr_utils.config import RunConfig

    cfg = RunConfig.for_notebook("02_esr_across_models", "paper")
    settings = ProtocolSettings.from_config(cfg)
    lines = ["| model | batch | tokens/s (derived) | trials | tokens | GPU hours | judge cost |",
             "|---|---|---|---|---|---|---|"]
    for name in cfg.models:
        spec = get_spec(name)
        estimate = estimate_chapter2(settings, spec, cfg.judge, n_prompts=38,
                                     sweep=name == cfg.model)
        fit = decode_tokens_per_second(spec, gpu)
        if fit is None:
            where = "NDIF" if spec.ndif_hosted else "a larger GPU"
            speed = f"- | does not fit on one {gpu.name}: runs on {where}"
            hours = "-"
        else:
            speed = f"{fit[0]} | {fit[1]:,.0f}"
            hours = f"{estimate.generation_hours:.1f}"
        cost = "-" if estimate.judge_cost_usd is None else f"${estimate.judge_cost_usd:,.0f}"
        lines.append(f"| {name} | {speed} | {estimate.trials:,} | "
                     f"{estimate.generated_tokens / 1e6:.1f} M | {hours} | {cost} |")
    return "\n".join(lines)


def measure_step_overhead(name: str = "llama-3.1-8b-instruct", steps: int = 32) -> float:
    """Seconds per decoding step of `name`'s random-weight stand-in at batch 1 on this machine:
    everything a step costs except the real model's matmuls."""
    import os
    import time

    from esr_utils import stand_ins
    from esr_utils.generation import Trial, generate_trials
    from esr_utils.models import load_model
    from esr_utils.sampling import Sampling

    os.environ[stand_ins.ENV_VAR] = "1"
    model = load_model(name, device="cpu")
    sampling = Sampling(max_new_tokens=steps)
    generate_trials(model, [Trial("Warm up.", seed=1)], sampling=sampling, progress=False)
    began = time.perf_counter()
    record = generate_trials(model, [Trial("Explain how tides work.", seed=2)],
                             sampling=sampling, progress=False)[0]
    return (time.perf_counter() - began) / max(record["n_new_tokens"], 1)


if __name__ == "__main__":
    import sys

    if "--measure" in sys.argv:
        print(f"{measure_step_overhead() * 1000:.1f} ms per step")
    else:
        print(wall_time_table())
