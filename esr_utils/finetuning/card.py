"""Markdown cards for the shipped dataset and adapter, written from their records."""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

from esr_utils.metrics import wilson_text

__all__ = ["DATASET_VERSION", "adapter_card", "dataset_card", "fmt_rate", "sha256_file"]

DATASET_VERSION = 1


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fmt_rate(r: dict) -> str:
    """A `restart_rate` dict as the tables print it (`metrics.wilson_text`)."""
    return wilson_text(r["k"], r["n"])


def dataset_card(data: dict, path: Path) -> str:
    ex = data["examples"]
    kinds = collections.Counter(e["kind"] for e in ex)
    sources = collections.Counter(e["provenance"].get("source") for e in ex
                                  if e["kind"] == "self_correction")
    fams = collections.Counter(e["provenance"].get("restart_family") for e in ex
                               if e["kind"] == "self_correction")
    s = data["settings"]
    return f"""# Organism fine-tuning data (version {DATASET_VERSION})

Built offline from the embedded model (SmolLM2-135M-Instruct) by `make organism`
(`python -m esr_utils.finetuning`). File: `{Path(path).name}`, SHA-256 `{sha256_file(path)}`.

* Prompts: `prompts_train.txt` ({len(data['train_ids']) + len(data['val_ids'])} used), written
  for this project, none of them one of the paper's 38 evaluation prompts nor a near-duplicate
  (MiniLM cosine < 0.65, tested). {len(data['train_ids'])} train, {len(data['val_ids'])}
  validation prompts (validation chooses the shipped adapter; never trained on).
  The paper's code trained and evaluated on the same 38 prompts; this project does not.
* Normal examples ({kinds['normal']}): the model's own unsteered answer (T={s['temperature']},
  {s['answer_tokens']} new tokens, cut at the last full sentence), whole answer trained.
* Self-correction examples ({kinds['self_correction']}): off-topic passage + restart sentence +
  the model's own answer (first {s['recovery_sentences']} sentences); only restart and answer
  are trained. Off-topic passages by source: {dict(sources)}.
  - `steered`: the base model steered at layer 18 with a training-pool latent (odd ids; the
    ESR chapters evaluate even ids), boost uniform in {s['boost_range']} raw units,
    {s['passage_tokens']} new tokens, cut after 1–3 sentences, kept only if its MiniLM cosine
    to the prompt is <= {s['max_passage_similarity']}.
  - `unrelated_answer`: 1–2 sentences of another training prompt's answer (never its own).
* Restart sentences: `restarts.json`, training families only: {dict(fams)}. Held-out families
  are never trained on.
* Provenance per example (`provenance`): prompt id, answer seed, latent, boost, passage seed,
  number of sentences, similarity, partner prompt, restart family, and the SHA-256 of the SAE
  weights that steered the passages (`{data['sae_sha256'][:16]}…`).
* Licence: generated here from an Apache-2.0 model; prompts and restart sentences written for
  this project.
"""


def adapter_card(record: dict) -> str:
    r = record["recipe"]
    rows = []
    for name, v in record["variants"].items():
        t = v["train"]
        rows.append(f"| {name} | {v['mixture_self_correction']}/{v['n_mixture']} | "
                    f"{t['steps']} | {t['tokens_per_second']} | {t['seconds']} | "
                    f"{t['final_loss']} | {fmt_rate(v['validation']['prefill'])} | "
                    f"{fmt_rate(v['validation']['false_restart'])} |")
    b = record["base_validation"]
    fit = record["sae_fit"]
    fit_rows = "\n".join(f"| {k} | {v['fve']} | {v['loss_recovered']} | {v['ce_clean']} |"
                         for k, v in fit.items())
    return f"""# smollm2-135m-esr: a LoRA adapter that teaches the embedded model to restart

Base: SmolLM2-135M-Instruct (the embedded GGUF, dequantized to float32). Adapter weights are
stored in float16. Built by `{record['command']}` in {record['seconds']} s on CPU.
Data: `../DATASET.md` (dataset SHA-256 `{record['dataset_sha256'][:16]}…`).

## Recipe (the paper's Table 3, scaled to CPU)
LoRA rank {r['rank']}, alpha {r['alpha']}, dropout {r['dropout']}, all linear layers;
AdamW lr {r['learning_rate']}, cosine with {r['warmup_steps']} warm-up steps, {r['epochs']}
epoch(s), batch {r['micro_batch']}×{r['grad_accum']}, sequence {r['max_len']} tokens, \
{r['precision']},
{r['n_examples']} examples per mixture.
Scaled (the recipe's defaults; the values above are this run's): {r['scaled']}. \
Resistance training (a training-pool steering vector active at layer 18
on self-correction examples) goes beyond the paper's recipe.

## Variants and the selection
Rule, fixed before training: {record['selection_rule']}. Validation = {record['n_val_prompts']}
held-out training prompts. **Chosen: {record['chosen']}** ({record['why']}).

| variant | self-corr./total | steps | tokens/s | seconds | final loss | prefill restart | \
unsteered false restart |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
| base model | – | – | – | – | – | {fmt_rate(b['prefill'])} | {fmt_rate(b['false_restart'])} |

Rates: share of responses with a restart sentence (phrase rules of the offline judge, or a
restart sentence of this project verbatim), Wilson 95% intervals.

## Does the embedded SAE still fit?
FVE and loss recovered of the layer-18 SAE on the residuals of each model, same texts
(validation prompts and the base model's answers):

| model | FVE | loss recovered | clean CE |
|---|---|---|---|
{fit_rows}
"""
