"""Benchmark (not a test): does a trial sampled in a batch give the same text as sampled alone?

Floating-point sums differ slightly between batch shapes (padding changes matmul blocking), so
a token can flip when a sampled uniform lands within ~1e-7 of a CDF boundary. This measures
how often that happens on the embedded model, and the generation speed at batch 1 and batch 8.

    .venv/bin/python -m benchmarks.batch_equivalence --trials 24 --tokens 64
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.models import load_model
from esr_utils.prompts import load_prompts
from esr_utils.saes import load_sae
from esr_utils.steering import Steering


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    model = load_model(device="cpu")
    sae = load_sae()
    prompts = load_prompts()
    g = torch.Generator().manual_seed(0)
    latents = torch.randint(0, sae.cfg.d_sae, (args.trials,), generator=g).tolist()
    boosts = [0.0, 100.0, 200.0, 400.0]
    trials = [Trial(prompts[i % len(prompts)],
                    Steering(latents[i], boosts[i % 4]) if boosts[i % 4] else Steering(), seed=i)
              for i in range(args.trials)]
    sampling = Sampling(max_new_tokens=args.tokens)

    began = time.perf_counter()
    batched = generate_trials(model, trials, sae=sae, sampling=sampling,
                              batch_size=args.batch_size, progress=False)
    batch_s = time.perf_counter() - began
    began = time.perf_counter()
    solo = [generate_trials(model, [t], sae=sae, sampling=sampling, progress=False)[0]
            for t in trials]
    solo_s = time.perf_counter() - began

    same = sum(a["response"] == b["response"] for a, b in zip(batched, solo))
    tokens = sum(r["n_new_tokens"] for r in batched)
    report = {
        "trials": args.trials, "max_new_tokens": args.tokens, "batch_size": args.batch_size,
        "identical_texts": same, "differing_texts": args.trials - same,
        "tokens_per_s_batched": round(tokens / batch_s, 1),
        "tokens_per_s_batch1": round(sum(r["n_new_tokens"] for r in solo) / solo_s, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
