"""`make organism`: build the data, train the variants, pick one by the fixed rule, ship it.

    python -m esr_utils.finetuning [--fractions 0.5 0.9] [--resistance 0.9] [--rebuild-data]

Writes `esr_utils/data/organism/dataset.json` (+ `DATASET.md`) and the adapter folder
`esr_utils/data/organism/adapter/` (weights, `training.json`, `README.md`, `manifest.json`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from esr_utils.finetuning import card, pipeline
from esr_utils.finetuning.building import (
    BuildSettings,
    build_dataset,
    load_dataset,
    sae_sha256,
    save_dataset,
)
from esr_utils.finetuning.examples import ORGANISM_DATA_DIR, load_training_prompts
from esr_utils.finetuning.organism import ADAPTER_DIR, load_adapter, save_adapter
from esr_utils.finetuning.training import RECIPES, recipe


def _strip(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k in ("prefill", "false_restart", "steered")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.9])
    ap.add_argument("--resistance", type=float, nargs="*", default=[0.9],
                    help="fractions also trained with a steering vector active (beyond the paper)")
    ap.add_argument("--n-prompts", type=int, default=None,
                    help="training prompts used when (re)building the data (default: all)")
    ap.add_argument("--n-examples", type=int, default=RECIPES["organism"].n_examples,
                    help="examples per mixture")
    ap.add_argument("--answer-tokens", type=int, default=64)
    ap.add_argument("--passage-tokens", type=int, default=40)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=RECIPES["organism"].epochs)
    ap.add_argument("--val-seeds", type=int, default=2)
    ap.add_argument("--val-steer", type=int, default=4,
                    help="training-pool (latent, boost) pairs for the steered validation check")
    ap.add_argument("--rebuild-data", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.time()
    from esr_utils.models import load_model
    from esr_utils.saes import load_sae

    sae = load_sae("smollm2-135m-instruct")
    data_path = ORGANISM_DATA_DIR / "dataset.json"
    stale = data_path.exists() and json.loads(data_path.read_text())["sae_sha256"] != sae_sha256()
    if stale:
        print("[organism] the shipped dataset's passages were steered with another SAE: "
              "rebuilding it", flush=True)
    if args.rebuild_data or stale or not data_path.exists():
        settings = BuildSettings(n_prompts=args.n_prompts, seed=args.seed,
                                 answer_tokens=args.answer_tokens,
                                 passage_tokens=args.passage_tokens)
        data = build_dataset(load_model(), sae, settings)
        save_dataset(data, data_path)
    data, examples = load_dataset(data_path)
    (ORGANISM_DATA_DIR / "DATASET.md").write_text(card.dataset_card(data, data_path))
    prompts = load_training_prompts()
    prefixes = pipeline.prefill_prefixes(data, data["val_ids"], prompts, args.seed)
    r = recipe("organism", n_examples=args.n_examples, max_len=args.max_len, epochs=args.epochs)
    steer = pipeline.validation_steering(sae.W_dec.shape[0], args.val_steer, r.boost_range,
                                         args.seed)
    check = dict(n_seeds=args.val_seeds, seed=args.seed, answer_tokens=64, sae=sae, steer=steer)
    variants = [(f"sc{round(100 * f)}", f, False) for f in args.fractions]
    variants += [(f"sc{round(100 * f)}-resist", f, True) for f in args.resistance]
    steer_rows = {int(k): sae.W_dec[int(k)].detach().clone()
                  for k in range(1, sae.W_dec.shape[0], 2)}  # the training pool (odd ids)
    work = Path(tempfile.mkdtemp(prefix="organism-"))
    results = {}
    for name, fraction, resist in variants:
        print(f"[organism] training {name}", flush=True)
        res, mixture, tok = pipeline.train_variant(
            examples, fraction, pipeline.variant_recipe(r, resist), seed=args.seed,
            steer_rows=steer_rows if resist else None)
        model = pipeline.trained_variant(res.model, work / name, f"smollm2-135m-esr-{name}")
        scores = pipeline.validation_scores(model, prefixes, **check)
        results[name] = {"fraction": fraction, "resistance": resist, "train": res.summary(),
                         "history": res.history, "validation": _strip(scores),
                         "n_mixture": len(mixture),
                         "mixture_self_correction": sum(e.kind == "self_correction"
                                                        for e in mixture)}
        print(f"[organism] {name}: {json.dumps(_strip(scores))}", flush=True)
    hf, tok = pipeline.base_hf()
    base_scores = pipeline.validation_scores(pipeline.as_loaded(hf, tok, "smollm2-135m-instruct"),
                                             prefixes, **check)
    chosen, why = pipeline.select_variant({k: v["validation"] for k, v in results.items()},
                                          {k: v["fraction"] for k, v in results.items()})
    print(f"[organism] chosen {chosen}: {why}", flush=True)
    org_hf = load_adapter(pipeline.base_hf()[0], work / chosen, verify=False).merge_and_unload()
    fit_texts = [data["answers"][str(i)] for i in data["val_ids"]]
    fit_texts = [p + "\n" + a for p, a in zip([prompts[i] for i in data["val_ids"]], fit_texts)]
    fit = pipeline.sae_fit(sae, {"base": hf, "organism": org_hf}, tok, fit_texts)
    record = {"command": "python -m esr_utils.finetuning " + shlex.join(sys.argv[1:]),
              "selection_rule": pipeline.SELECTION_RULE, "chosen": chosen, "why": why,
              "recipe": results[chosen]["train"]["recipe"], "variants": results,
              "base_validation": _strip(base_scores), "sae_fit": fit,
              "dataset_sha256": card.sha256_file(data_path),
              "n_val_prompts": len(data["val_ids"]), "val_seeds": args.val_seeds,
              "val_steering": steer,
              "seconds": round(time.time() - began, 1)}
    # the chosen adapter, re-saved into the shipped folder with its record and card
    chosen_model = load_adapter(pipeline.base_hf()[0], work / chosen, verify=False)
    ADAPTER_DIR.mkdir(parents=True, exist_ok=True)
    for old in ADAPTER_DIR.iterdir():
        old.unlink()
    save_adapter(chosen_model, ADAPTER_DIR, extra_files={
        "training.json": json.dumps(record, indent=1) + "\n",
        "README.md": card.adapter_card(record)})
    print(f"[organism] shipped {chosen} to {ADAPTER_DIR} in {record['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
