"""Build the fine-tuning data offline from the embedded model itself (chapter 6).

1. Every training prompt gets the model's own unsteered answer (normal examples, recoveries).
2. Off-topic passages: the base model steered with a random *training-pool* latent (odd ids;
   chapter 2 evaluates even ids), cut at a sentence boundary after 1–3 sentences; and answers to
   an unrelated training prompt (never the same prompt), cut the same way.
3. Each self-correction example = passage + a restart sentence from a training family + the
   model's own answer to its prompt (up to `recovery_sentences` sentences).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esr_utils.finetuning.examples import (
    Example,
    first_sentences,
    load_training_prompts,
    normal_example,
    restart_sentences,
    self_correction_example,
    split_prompts,
    unrelated_partner,
)
from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.latent_selection import latent_pool
from esr_utils.steering import Steering

__all__ = [
    "BuildSettings",
    "build_dataset",
    "complete_sentences",
    "load_dataset",
    "sae_sha256",
    "save_dataset",
]


@dataclass(frozen=True)
class BuildSettings:
    n_prompts: int | None = None  # None = every training prompt
    val_fraction: float = 0.15
    answer_tokens: int = 120
    passage_tokens: int = 56
    boost_range: tuple[float, float] = (50.0, 110.0)
    max_passage_similarity: float = 0.35  # a passage must be this far from its prompt (MiniLM)
    recovery_sentences: int = 4
    temperature: float = 0.6
    batch_size: int = 32
    seed: int = 0


def sae_sha256() -> str:
    """SHA-256 of the embedded SAE's weights file: which SAE steered the passages."""
    from esr_utils.saes.loading import EMBEDDED_SAE_DIR, MANIFEST

    return json.loads((EMBEDDED_SAE_DIR / MANIFEST).read_text())["sha256"][
        "sae_weights.safetensors"]


def complete_sentences(text: str) -> str:
    """`text` up to its last sentence end, so a length-capped answer does not stop mid-word."""
    ends = [text.rfind(c) for c in ".!?"]
    cut = max(ends)
    return text[: cut + 1].strip() if cut > 0 else ""


def build_dataset(model, sae, settings: BuildSettings = BuildSettings(), *,
                  progress: bool = True) -> dict:
    """Generate answers and passages, and assemble examples; returns a dict ready to save."""
    from esr_utils.judging.offline import load_embedder

    prompts = load_training_prompts()
    n = len(prompts) if settings.n_prompts is None else min(settings.n_prompts, len(prompts))
    train_ids, val_ids = split_prompts(len(prompts), settings.val_fraction, settings.seed)
    train_ids = [i for i in train_ids if i < n]
    val_ids = [i for i in val_ids if i < n]
    rng = random.Random(settings.seed)
    pool = latent_pool("training", sae.W_dec.shape[0])
    ids = train_ids + val_ids
    answer_sampling = Sampling(settings.temperature, model.spec.repetition_penalty,
                               settings.answer_tokens)
    answers = generate_trials(model, [Trial(prompts[i], seed=1000 + i) for i in ids],
                              sampling=answer_sampling, batch_size=settings.batch_size,
                              progress=progress)
    answer = {i: complete_sentences(r["response"]) for i, r in zip(ids, answers)}
    steer = {i: (int(rng.choice(pool)), round(rng.uniform(*settings.boost_range), 1))
             for i in ids}
    passage_sampling = Sampling(settings.temperature, model.spec.repetition_penalty,
                                settings.passage_tokens)
    steered = generate_trials(
        model, [Trial(prompts[i], Steering(*steer[i]), seed=2000 + i) for i in ids], sae=sae,
        sampling=passage_sampling, batch_size=settings.batch_size, progress=progress)
    embedder = load_embedder()
    sha = sae_sha256()
    train_restarts = restart_sentences(held_out=False)
    passages, examples = {}, []
    for i, rec in zip(ids, steered):
        k = rng.randint(1, 3)
        cut = next((c for c in (first_sentences(rec["response"], m) for m in range(k, 0, -1))
                    if c), "")
        passages[i] = {"text": cut, "latent": steer[i][0], "boost": steer[i][1],
                       "seed": 2000 + i, "sentences": k, "raw": rec["response"]}
    texts = [prompts[i] for i in ids] + [passages[i]["text"] or "." for i in ids]
    vecs = embedder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    for j, i in enumerate(ids):
        passages[i]["similarity"] = round(float(np.dot(vecs[j], vecs[len(ids) + j])), 3)
    for i in train_ids:
        base = {"prompt_id": i, "answer_seed": 1000 + i, "sae_sha256": sha}
        if answer[i]:
            examples.append(normal_example(i, prompts[i], answer[i], {**base, "source": "own"}))
        recovery = first_sentences(answer[i], settings.recovery_sentences) or answer[i]
        if not recovery:
            continue
        p = passages[i]
        if p["text"] and p["similarity"] <= settings.max_passage_similarity:
            family, restart = rng.choice(train_restarts)
            examples.append(self_correction_example(i, prompts[i], p["text"], restart, recovery, {
                **base, "source": "steered", "latent": p["latent"], "boost": p["boost"],
                "passage_seed": p["seed"], "passage_sentences": p["sentences"],
                "passage_similarity": p["similarity"], "restart_family": family}))
        other = unrelated_partner(i, train_ids, rng)
        drift = first_sentences(answer[other], rng.randint(1, 2))
        if drift:
            family, restart = rng.choice(train_restarts)
            examples.append(self_correction_example(i, prompts[i], drift, restart, recovery, {
                **base, "source": "unrelated_answer", "partner_prompt_id": other,
                "restart_family": family}))
    return {"settings": settings.__dict__, "train_ids": train_ids, "val_ids": val_ids,
            "answers": {str(i): answer[i] for i in ids},
            "passages": {str(i): passages[i] for i in ids},
            "examples": [e.to_dict() for e in examples], "sae_sha256": sha}


def save_dataset(data: dict, path: Path) -> str:
    """Write the dataset as JSON (sorted keys) and return its SHA-256."""
    blob = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False).encode()
    Path(path).write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


def load_dataset(path: Path) -> tuple[dict, list[Example]]:
    data = json.loads(Path(path).read_text())
    return data, [Example.from_dict(e) for e in data["examples"]]
