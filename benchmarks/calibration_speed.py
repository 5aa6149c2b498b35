"""Benchmark (not a test): calibrated latents per minute, batched vs one latent at a time.

Same latents, same seeds, same judge, in one process; generations are not cached between the
two modes (each writes to its own temporary folder).

    .venv/bin/python -m benchmarks.calibration_speed --latents 8 --steps 4 --tokens 64
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from esr_utils.generation import Sampling, Trial
from esr_utils.judging import make_judge
from esr_utils.models import load_model
from esr_utils.prompts import load_prompts
from esr_utils.protocol import judged_trials
from esr_utils.residual import boost_unit, median_residual_norm, residual_norms
from esr_utils.saes import load_labels, load_sae
from esr_utils.steering import Steering
from esr_utils.threshold_search import boost_prior, search_thresholds, trial_seed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latents", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()

    model, sae, labels = load_model(device="cpu"), load_sae(), load_labels()
    judge, prompts = make_judge("offline"), load_prompts()
    latents = labels.live_ids()[: args.latents]
    norms = residual_norms(model, prompts[:8], [model.spec.steering_layer])
    scale = median_residual_norm(norms[model.spec.steering_layer])
    prior, bounds = boost_prior(boost_unit(scale, sae.W_dec[latents]))
    sampling = Sampling.for_model(model.spec, max_new_tokens=args.tokens)

    def run(batch_latents, folder: Path):
        def score_fn(queries):
            trials = [Trial(prompts[np.random.default_rng(trial_seed(0, q.latent_id, q.step))
                                    .integers(len(prompts))],
                            Steering(q.latent_id, q.boost), seed=trial_seed(1, q.latent_id, q.step))
                      for q in queries]
            records = judged_trials(model, trials, [labels.label(q.latent_id) for q in queries],
                                    judge=judge, sae=sae, sampling=sampling, directory=folder,
                                    batch_size=len(trials), progress=False)
            return [((r["attempts"] or [{"score": 0}])[0]["score"]) / 100 for r in records]

        out = {}
        for group in batch_latents:
            out.update(search_thresholds(group, score_fn, prior=prior, bounds=bounds,
                                         n_steps=args.steps, progress=False))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        batched = run([latents], Path(tmp) / "batched")
        batched_s = time.perf_counter() - began
        began = time.perf_counter()
        alone = run([[k] for k in latents], Path(tmp) / "alone")
        alone_s = time.perf_counter() - began
    same = {k: batched[k].threshold for k in latents} == {k: alone[k].threshold for k in latents}
    print(json.dumps({
        "latents": len(latents), "steps": args.steps, "max_new_tokens": args.tokens,
        "batched_latents_per_min": round(60 * len(latents) / batched_s, 2),
        "one_at_a_time_latents_per_min": round(60 * len(latents) / alone_s, 2),
        "speed_up": round(alone_s / batched_s, 2), "same_thresholds": same,
    }, indent=2))


if __name__ == "__main__":
    main()
