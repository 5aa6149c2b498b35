"""The benchmark command: every performance figure of the book, measured side by side in one
process.

    .venv/bin/python -m benchmarks.run            # or `make bench`; writes benchmarks/results.json
    .venv/bin/python -m benchmarks.run --quick    # fewer repeats, for a first look

Absolute speeds vary between machines; ratios measured in the same process hold. The book's
"Performance" appendix draws its table and plots from the JSON this writes, together with the
machine and the package versions it was measured with.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import tempfile
import time
from pathlib import Path

import torch

from esr_utils.execution_report import read_reports
from esr_utils.hardware import matmul_peak_gflops
from esr_utils.paths import REPO_ROOT

RESULTS_PATH = REPO_ROOT / "benchmarks" / "results.json"
BATCH_SIZES = (1, 8, 32)
NEW_TOKENS = 48
SWEEP_BATCH_SIZES = (32, 64, 128)
CHAPTER_TOKENS = 96  # the cpu chapters' answer length


def memory_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """Best rate at which this machine reads fp32 memory (GB/s): a sum over a buffer far larger
    than any cache, so every byte comes from RAM."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    buffer.sum()  # warm up the threads and fault the pages in
    best = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        buffer.sum()
        best = max(best, 4 * buffer.numel() / (time.perf_counter() - began) / 1e9)
    return best


def multiplied_weights(model) -> int:
    """Weights one new token multiplies: all but the input embedding, plus a tied lm_head."""
    config = model.hf.config
    weights = sum(p.numel() for name, p in model.hf.named_parameters()
                  if "embed_tokens" not in name)
    if getattr(config, "tie_word_embeddings", False):
        weights += config.vocab_size * config.hidden_size  # the tied lm_head still multiplies
    return weights


def flops_per_token(model, context: int) -> float:
    """Forward FLOPs for one new token: 2 per weight (lm_head included), plus attention scores."""
    config = model.hf.config
    attention = 2 * 2 * config.num_hidden_layers * context * config.hidden_size
    return 2 * multiplied_weights(model) + attention


def roofline(model, *, batch: int, context: int, peak_gflops: float,
             bandwidth_gbs: float) -> dict:
    """What one decoding step at `batch` rows can reach on this machine: every step reads each
    weight once from RAM (fp32) and multiplies it by every row, so the attainable rate is the
    smaller of the matmul peak and (FLOPs per byte read) × memory bandwidth."""
    weight_bytes = 4 * multiplied_weights(model)
    flops = batch * flops_per_token(model, context)
    attainable = min(peak_gflops, flops / weight_bytes * bandwidth_gbs)
    return {"weight_mb": round(weight_bytes / 2**20, 1),
            "bandwidth_gbs": round(bandwidth_gbs, 1),
            "flops_per_byte": round(flops / weight_bytes, 1),
            "attainable_gflops": round(attainable, 1),
            "bound": "memory" if attainable < peak_gflops else "compute"}


def _steered_trials(prompts, sae, n: int, seed: int = 0):
    """`n` trials, every row steered by a different latent and boost (the realistic worst case)."""
    from esr_utils.generation import Trial
    from esr_utils.steering import Steering

    g = torch.Generator().manual_seed(seed)
    latents = torch.randperm(sae.cfg.d_sae, generator=g)[:n].tolist()
    return [Trial(prompts[i % len(prompts)], Steering(latents[i], 40.0 + 5.0 * (i % 8)), seed=i)
            for i in range(n)]


def _sampling(new_tokens: int):
    """The benchmark's sampling: the embedded model's temperature and repetition penalty."""
    from esr_utils.generation import Sampling

    return Sampling(temperature=0.6, repetition_penalty=1.1, max_new_tokens=new_tokens)


def _steps_run(records) -> int:
    """Decoding steps the batch ran: it stops only when every row has ended."""
    return max(r["n_new_tokens"] + int(r["hit_eos"]) for r in records)


def steered_vs_plain(model, sae, prompts, repeats: int) -> list[dict]:
    """Steered generation against plain transformers `generate`, same batch, length and sampling."""
    from esr_utils.generation import generate_trials, tokenize_chats

    sampling = _sampling(NEW_TOKENS)
    rows = []
    for batch in BATCH_SIZES:
        trials = _steered_trials(prompts, sae, batch)
        inputs = tokenize_chats(model.tokenizer, [t.prompt for t in trials])
        steered, plain = [], []
        for rep in range(repeats + 1):  # the first round warms up and is not counted
            began = time.perf_counter()
            records = generate_trials(model, trials, sae=sae, sampling=sampling,
                                      batch_size=batch, progress=False)
            seconds = time.perf_counter() - began
            tokens = batch * _steps_run(records)
            began = time.perf_counter()
            torch.manual_seed(rep)
            # top_k=0: transformers samples from the top 50 tokens unless told otherwise; the
            # steered path samples from the whole vocabulary, and so must the baseline
            out = model.hf.generate(**inputs, do_sample=True, temperature=sampling.temperature,
                                    top_k=0, repetition_penalty=sampling.repetition_penalty,
                                    max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                    pad_token_id=model.tokenizer.pad_token_id)
            plain_seconds = time.perf_counter() - began
            plain_tokens = batch * (out.shape[1] - inputs["input_ids"].shape[1])
            if rep:
                steered.append(tokens / seconds)
                plain.append(plain_tokens / plain_seconds)
        s, p = max(steered), max(plain)
        rows.append({"batch": batch, "steered_tokens_per_s": round(s, 1),
                     "plain_tokens_per_s": round(p, 1), "time_ratio": round(p / s, 3)})
    return rows


def end_to_end(model, sae, prompts, n_trials: int, batch: int) -> dict:
    """Trials per minute for generate + offline judge + store, with a profile of where time goes."""
    from esr_utils.judging import make_judge
    from esr_utils.protocol import judged_trials

    judge = make_judge("offline")
    trials = _steered_trials(prompts, sae, n_trials, seed=1)
    sampling = _sampling(NEW_TOKENS)
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        profile.enable()
        judged_trials(model, trials, ["a concept"] * len(trials), judge=judge, sae=sae,
                      sampling=sampling, directory=folder, batch_size=batch, progress=False)
        profile.disable()
        seconds = time.perf_counter() - began
    stats = pstats.Stats(profile)
    total = sum(v[3] for v in stats.stats.values() if v[3] > 0) or 1.0

    def share(fragment: str) -> float:
        # cumulative time of the outermost function whose name matches, as a share of the run
        times = [v[3] for (file, _, name), v in stats.stats.items() if fragment in f"{file}:{name}"]
        return round(max(times, default=0.0) / seconds, 3)

    return {"trials": n_trials, "batch": batch, "seconds": round(seconds, 1),
            "trials_per_minute": round(60 * n_trials / seconds, 1),
            "share": {"generation": share("batching.py:generate_rows"),
                      "sampler": share("sampling.py:__call__"),
                      "judge": share("judge_records"),
                      "store": share("results.py:append")},
            "profiled_seconds": round(total, 1)}


def batch_scaling(model, sae, prompts) -> dict:
    """Steered trials per minute at batch 1 against batch 16 (16 trials each)."""
    sampling = _sampling(NEW_TOKENS)
    trials = _steered_trials(prompts, sae, 16, seed=2)
    rates = {batch: _trials_per_minute(model, sae, trials, sampling, batch) for batch in (1, 16)}
    return {"trials_per_minute_batch_1": rates[1], "trials_per_minute_batch_16": rates[16],
            "speedup": round(rates[16] / rates[1], 2)}


def _trials_per_minute(model, sae, trials, sampling, batch: int) -> float:
    from esr_utils.generation import generate_trials

    began = time.perf_counter()
    generate_trials(model, trials, sae=sae, sampling=sampling, batch_size=batch, progress=False)
    return round(60 * len(trials) / (time.perf_counter() - began), 1)


def batch_sweep(model, sae, prompts, n_trials: int = max(SWEEP_BATCH_SIZES)) -> list[dict]:
    """Steered trials per minute by batch size, at the chapters' answer length (96 tokens):
    the measurement behind `batching.CPU_BATCH_SIZE`. Even under --quick it generates enough
    trials to fill the largest batch, or the largest sizes would measure the same batches."""
    sampling = _sampling(CHAPTER_TOKENS)
    trials = _steered_trials(prompts, sae, n_trials, seed=3)
    return [{"batch": batch, "trials": n_trials, "new_tokens": CHAPTER_TOKENS,
             "trials_per_minute": _trials_per_minute(model, sae, trials, sampling, batch)}
            for batch in SWEEP_BATCH_SIZES]


# a forced answer opening, cut at 100-400 characters per row, as chapter 3's prefill cuts are
OPENING = ("Bananas grow in bunches called hands, and a single plant can carry a heavy stem of "
           "them before it is cut down. Farmers in the tropics plant them in rows, keep the soil "
           "wet, and harvest the fruit while it is still green so that it ripens on its way to "
           "the market. The yellow colour comes later, as starch turns to sugar, and the peel "
           "darkens in spots when the fruit is ripe enough to eat, which is also when it tastes "
           "sweetest.")


def planned_conditions(model, sae, prompts, n_conditions: int = 4, rows: int = 24) -> dict:
    """Chapter 3's shape: `n_conditions` small conditions of `rows` steered trials, each forced
    to open with 100-400 characters and continued for 96 tokens, generated one call each, then
    the same trials planned together in one call (`plans.judged_plans` without the judge):
    steered trials per minute, each way."""
    from dataclasses import replace

    from esr_utils.batching import CPU_BATCH_SIZE

    sampling = _sampling(CHAPTER_TOKENS)
    trials = [replace(t, assistant_prefix=OPENING[:100 + 100 * (i % 4)].rsplit(" ", 1)[0])
              for i, t in enumerate(_steered_trials(prompts, sae, n_conditions * rows, seed=5))]
    began = time.perf_counter()
    for c in range(n_conditions):
        _trials_per_minute(model, sae, trials[c * rows:(c + 1) * rows], sampling, CPU_BATCH_SIZE)
    alone = round(60 * len(trials) / (time.perf_counter() - began), 1)
    together = _trials_per_minute(model, sae, trials, sampling, CPU_BATCH_SIZE)
    return {"conditions": n_conditions, "rows_each": rows, "opening_chars": "100-400",
            "new_tokens": CHAPTER_TOKENS, "batch_size": CPU_BATCH_SIZE,
            "one_call_each_trials_per_minute": alone,
            "planned_together_trials_per_minute": together,
            "speedup": round(together / alone, 2),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def decoding_options(model, sae, prompts, batch: int = 64) -> list[dict]:
    """Steered tokens per second with each attention kernel and KV cache transformers offers
    here, at one batch: whether the defaults (SDPA, a cache that grows) are the fastest."""
    from esr_utils.generation import generate_trials

    sampling = _sampling(NEW_TOKENS)
    trials = _steered_trials(prompts, sae, batch, seed=4)
    default_attention = model.hf.config._attn_implementation
    default_cache = model.hf.generation_config.cache_implementation
    rows = []
    try:
        for attention in ("sdpa", "eager"):
            for cache in ("dynamic", "static"):
                model.hf.set_attn_implementation(attention)
                model.hf.generation_config.cache_implementation = (
                    None if cache == "dynamic" else cache)
                generate_trials(model, trials[:8], sae=sae, sampling=_sampling(4), batch_size=8,
                                progress=False)  # warm-up
                began = time.perf_counter()
                records = generate_trials(model, trials, sae=sae, sampling=sampling,
                                          batch_size=batch, progress=False)
                tokens = batch * _steps_run(records)
                rows.append({"attention": attention, "kv_cache": cache, "batch": batch,
                             "tokens_per_s": round(tokens / (time.perf_counter() - began), 1)})
    finally:
        model.hf.set_attn_implementation(default_attention)
        model.hf.generation_config.cache_implementation = default_cache
    return rows


def machine() -> dict:
    from esr_utils.results import package_versions

    return {"processor": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "python": platform.python_version(), "versions": package_versions(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# measurements `--only` can refresh on their own: (model, sae, prompts, quick) -> result
_REMEASURABLE = {
    "batch_sweep": lambda model, sae, prompts, quick: batch_sweep(model, sae, prompts),
    "decoding_options": lambda model, sae, prompts, quick: decoding_options(model, sae, prompts),
    "planned_conditions": lambda model, sae, prompts, quick: planned_conditions(
        model, sae, prompts, n_conditions=2 if quick else 4),
}


def main(argv: list[str] | None = None) -> int:
    from esr_utils.models import load_model
    from esr_utils.prompts import load_prompts
    from esr_utils.saes import load_sae

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat each, fewer trials")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    parser.add_argument("--chapters-only", action="store_true",
                        help="only refresh the chapters' times from the runner's reports, "
                             "keeping the speed figures already in --out")
    parser.add_argument("--only", nargs="+", choices=sorted(_REMEASURABLE),
                        help="measure only these again, keeping every other figure in --out "
                             "(each records when it was measured)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 2
    if args.only:
        results = json.loads(args.out.read_text())
        model, sae, prompts = load_model(device="cpu"), load_sae(), load_prompts()
        for name in args.only:
            results[name] = _REMEASURABLE[name](model, sae, prompts, args.quick)
            print(name, json.dumps(results[name], indent=2), flush=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {', '.join(args.only)} into {args.out}")
        return 0
    if args.chapters_only:
        results = json.loads(args.out.read_text())
        results["chapters"] = read_reports()
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["chapters"], indent=2))
        print(f"wrote the chapters' times into {args.out}")
        return 0

    model, sae, prompts = load_model(device="cpu"), load_sae(), load_prompts()
    peak, bandwidth = matmul_peak_gflops(), memory_bandwidth_gbs()
    print(f"fp32 matmul peak: {peak:.0f} GFLOP/s; memory read bandwidth {bandwidth:.1f} GB/s",
          flush=True)
    speed = steered_vs_plain(model, sae, prompts, repeats)
    for row in speed:
        print(row, flush=True)
    widest = speed[-1]
    context = 60 + NEW_TOKENS // 2  # a typical chat prompt plus half the answer
    achieved = widest["steered_tokens_per_s"] * flops_per_token(model, context) / 1e9
    results = {
        "machine": machine(),
        "matmul_peak_gflops": round(peak, 1),
        "steered_vs_plain": speed,
        "mfu": {"batch": widest["batch"], "achieved_gflops": round(achieved, 1),
                "utilisation": round(achieved / peak, 3),
                "roofline": roofline(model, batch=widest["batch"], context=context,
                                     peak_gflops=peak, bandwidth_gbs=bandwidth)},
        "batch_scaling": batch_scaling(model, sae, prompts),
        "batch_sweep": batch_sweep(model, sae, prompts),
        "decoding_options": decoding_options(model, sae, prompts),
        "planned_conditions": _REMEASURABLE["planned_conditions"](model, sae, prompts,
                                                                  args.quick),
        "end_to_end": end_to_end(model, sae, prompts, 16 if args.quick else 48, 16),
        "chapters": read_reports(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "chapters")},
                     indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
