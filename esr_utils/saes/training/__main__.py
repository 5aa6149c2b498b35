"""`python -m esr_utils.saes.training`: train, evaluate and label the embedded model's SAE.

Two commands:

* `--out DIR`: the whole run from the shipped corpus (`make sae`): the model's own texts
  (generated once, cached), activations, training, held-out metrics per source, labels;
* `--update DIR`: an existing SAE folder: held-out metrics per source and concept labels again
  (chosen on training text by `label_search`; latents too rare there keep a phrase from the
  top-activating contexts the folder stores), weights untouched.

Each writes the folder with `folder.save_embedded_sae`; `training.json` records the commands.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from esr_utils.saes.training import corpus as corpus_mod
from esr_utils.saes.training.activations import collect_activations, load_embedded_hf
from esr_utils.saes.training.concepts import build_labels, load_minilm
from esr_utils.saes.training.evaluate import evaluate_sources, meets_targets
from esr_utils.saes.training.folder import save_embedded_sae
from esr_utils.saes.training.label_scores import score_labels
from esr_utils.saes.training.label_search import apply_search
from esr_utils.saes.training.relabel import relabel_from_examples
from esr_utils.saes.training.settings import QUALITY_TARGETS, TrainSettings
from esr_utils.saes.training.sources import (
    CHAT_TEMPLATES,
    PROSE_TEMPLATES,
    generate_model_texts,
    topic_prompts,
    write_jsonl_gz,
)
from esr_utils.saes.training.train import train_sae

N_CHAT, N_PROSE = 384, 256  # the model's own texts generated for training
UPDATE_NOTE = (" (measured after training by `--update`: if the weights were trained on another "
               "corpus, some held-out documents may have been in it; the chat answers, to the "
               "book's evaluation prompts, never were)")


def _parse(argv):
    defaults = TrainSettings()
    parser = argparse.ArgumentParser(
        prog="python -m esr_utils.saes.training",
        description="Train (--out) or re-evaluate and relabel (--update) the embedded model's "
        "SAE on the shipped corpus in esr_utils/data/sae_corpus/.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", type=Path, help="train a new SAE into this folder")
    mode.add_argument("--update", type=Path, help="re-evaluate and relabel this SAE folder")
    for name, value in asdict(defaults).items():
        if name != "extra":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                                help=f"default: {value}")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for the model's texts and activations (default: OUT/cache); "
                        "with --update, labels are also chosen on the model's texts cached there")
    args = parser.parse_args(argv)
    settings = TrainSettings(**{k: getattr(args, k) for k in asdict(defaults) if k != "extra"})
    return args, settings


def _model_texts(hf, tokenizer, cache: Path, seed: int) -> list[dict]:
    path = cache / "model_texts.jsonl.gz"
    if path.exists():
        return [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    nouns = corpus_mod.concrete_nouns()
    texts = generate_model_texts(hf, tokenizer, topic_prompts(nouns, CHAT_TEMPLATES, N_CHAT, seed),
                                 "chat", 96, seed)
    texts += generate_model_texts(hf, tokenizer,
                                  topic_prompts(nouns, PROSE_TEMPLATES, N_PROSE, seed + 1),
                                  "prose", 128, seed + 1)
    write_jsonl_gz(path, texts)
    return texts


def _cached_model_texts(cache: Path | None) -> list[dict]:
    """The model's own texts from a training run's cache (`--cache`), if it holds them."""
    path = None if cache is None else cache / "model_texts.jsonl.gz"
    if path is None or not path.exists():
        return []
    return [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]


def _heldout(hf, tokenizer, settings, texts) -> dict:
    contexts = corpus_mod.heldout_corpus(tokenizer, settings, settings.heldout_tokens, texts)
    return contexts, {s: collect_activations(hf, tokenizer, c, settings.layer, progress=False)
                      for s, c in contexts.items()}


def _label_data(hf, tokenizer, settings, texts) -> dict:
    """Activations of `settings.label_tokens` training tokens per source (the prose and chat
    sources only with the model's texts), the text labels are chosen on."""
    sources = [s for s in corpus_mod.SOURCES if texts or s not in ("prose", "chat")]
    budget = replace(settings, **{f"{s}_tokens": settings.label_tokens for s in sources})
    parts = corpus_mod.build_corpus(tokenizer, budget, texts, sources)
    return _merge({s: collect_activations(hf, tokenizer, c, settings.layer, progress=False)
                   for s, c in parts.items()})


def _merge(parts: dict) -> dict:
    """Several `collect_activations` outputs as one (context indices shifted)."""
    width = max(p["tokens"].shape[1] for p in parts.values())
    tokens, acts, index, offset = [], [], [], 0
    for p in parts.values():
        t = torch.full((p["tokens"].shape[0], width), -1, dtype=torch.long)
        t[:, : p["tokens"].shape[1]] = p["tokens"]
        tokens.append(t)
        acts.append(p["acts"])
        index.append(p["index"] + torch.tensor([offset, 0]))
        offset += t.shape[0]
    return {"tokens": torch.cat(tokens), "acts": torch.cat(acts), "index": torch.cat(index)}


def _evaluate(sae, hf, tokenizer, settings, texts, labels, minilm, timings) -> tuple[dict, dict]:
    t = time.time()
    contexts, heldout_acts = _heldout(hf, tokenizer, settings, texts)
    heldout = evaluate_sources(sae, hf, contexts, settings.layer)
    for m in heldout.values():
        m["meets_targets"] = meets_targets(m, QUALITY_TARGETS)
    timings["evaluation_s"] = round(time.time() - t, 1)
    t = time.time()
    scores = score_labels(sae, labels, tokenizer, _merge(heldout_acts), minilm, seed=settings.seed)
    timings["label_scores_s"] = round(time.time() - t, 1)
    return heldout, scores


def recorded_command(argv: list[str]) -> str:
    """The command as the card records it: absolute folders become `<folder>`, since they name
    one machine's scratch space, not anything a reader needs to reproduce the run."""
    words = [("<folder>" if Path(a).is_absolute() else a) for a in argv]
    return "python -m esr_utils.saes.training " + " ".join(words)


def main(argv=None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, settings = _parse(argv)
    command = recorded_command(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus_mod.require_corpus_files()
    began, timings = time.time(), {}
    hf, tokenizer = load_embedded_hf()
    minilm = load_minilm()
    if args.update:
        from esr_utils.saes.loading import load_sae

        folder = args.update
        record = json.loads((folder / "training.json").read_text())
        sae = load_sae(path=folder)
        texts = _cached_model_texts(args.cache)
        t = time.time()
        labels = relabel_from_examples(folder, tokenizer, minilm)
        apply_search(labels, sae, tokenizer, _label_data(hf, tokenizer, settings, texts), minilm)
        timings["labels_s"] = round(time.time() - t, 1)
        # the model's own texts of the training run (when its cache is given): the same
        # held-out prose and chat documents as the run measured, else only the fixed sources
        heldout, scores = _evaluate(sae, hf, tokenizer, settings, texts, labels, minilm, timings)
        record.update(heldout=heldout, label_scores=scores, targets=QUALITY_TARGETS,
                      heldout_note=UPDATE_NOTE,
                      evaluation_command=command, evaluation_settings=asdict(settings),
                      n_live=labels["meta"]["n_live"], update_timings=timings)
        save_embedded_sae(sae, folder, labels=labels, training=record)
        print(json.dumps({"heldout": heldout, "label_scores": scores}, indent=1), file=sys.stderr)
        return folder

    out = args.out
    cache = args.cache or out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    t = time.time()
    texts = _model_texts(hf, tokenizer, cache, settings.seed)
    timings["model_texts_s"] = round(time.time() - t, 1)
    t = time.time()
    acts_path = cache / "activations.pt"
    if acts_path.exists():
        data = torch.load(acts_path)
    else:
        parts = corpus_mod.build_corpus(tokenizer, settings, texts)
        data = {s: collect_activations(hf, tokenizer, c, settings.layer, batch_size=32)
                for s, c in parts.items()}
        torch.save(data, acts_path)
    timings["activations_s"] = round(time.time() - t, 1)
    merged = _merge(data)
    t = time.time()
    sae = train_sae(merged["acts"], settings)
    timings["training_s"] = round(time.time() - t, 1)
    sae.cfg.metadata.model_name = "HuggingFaceTB/SmolLM2-135M-Instruct"
    sae.cfg.metadata.hook_name = f"blocks.{settings.layer}.hook_resid_post"
    sae.cfg.metadata.hf_hook_name = f"model.layers.{settings.layer}"
    sae.cfg.metadata.context_size = settings.context_size
    sae.cfg.metadata.prepend_bos = False
    sae.cfg.metadata.seqpos_slice = [1, None]  # position 0 is never encoded
    t = time.time()
    labels = build_labels(sae, tokenizer, merged, settings.layer, minilm)
    apply_search(labels, sae, tokenizer, _label_data(hf, tokenizer, settings, texts), minilm)
    timings["labels_s"] = round(time.time() - t, 1)
    heldout, scores = _evaluate(sae, hf, tokenizer, settings, texts, labels, minilm, timings)
    timings["total_s"] = round(time.time() - began, 1)
    record = {
        "command": command, "evaluation_command": command, "settings": asdict(settings),
        "corpus": {s: {"contexts": int(d["tokens"].shape[0]), "tokens": int(d["acts"].shape[0])}
                   for s, d in data.items()},
        "heldout": heldout, "targets": QUALITY_TARGETS, "label_scores": scores,
        "timings": timings, "n_train_activations": int(merged["acts"].shape[0]),
        "torch_threads": torch.get_num_threads(), "n_live": labels["meta"]["n_live"],
        "dead_fraction_corpus": len(labels["meta"]["dead"]) / settings.d_sae,
    }
    save_embedded_sae(sae, out, labels=labels, training=record)
    print(json.dumps({"heldout": heldout, "label_scores": scores, "timings": timings},
                     indent=1), file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
