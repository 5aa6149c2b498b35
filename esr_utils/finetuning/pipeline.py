"""Train mixtures, score them on validation prompts, pick one by a fixed rule, check the SAE fit.

The selection rule is fixed before any adapter is trained and uses validation prompts only
(training prompts held out of training, never the 38 evaluation prompts):

    among variants whose unsteered false-restart rate on the validation prompts is <= 2%,
    take the highest restart rate under steering (training-pool latents), then the highest
    prefill restart rate; ties go to the smaller self-correction fraction. If none is <= 2%,
    take the lowest false-restart rate (and say so in the card).

Steered restarts lead because the organism exists to be studied under steering: a model that
restarts after an off-topic prefix but not while steered would give the ESR chapters zeros.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from esr_utils.batching import AUTO
from esr_utils.finetuning.evaluation import prefill_continuations, restart_rate
from esr_utils.finetuning.examples import Example, first_sentences, mix_examples
from esr_utils.finetuning.training import LoraRecipe, train_lora
from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.models import LoadedModel, get_spec
from esr_utils.steering import Steering

__all__ = [
    "SELECTION_RULE",
    "as_loaded",
    "base_hf",
    "base_tokenizer",
    "prefill_prefixes",
    "sae_fit",
    "select_variant",
    "train_variant",
    "trained_variant",
    "validation_scores",
    "validation_steering",
]

SELECTION_RULE = ("highest validation restart rate under steering (training-pool latents), then "
                  "highest prefill restart rate, among variants with unsteered validation "
                  "false-restart rate <= 2%; ties to the smaller self-correction fraction; if "
                  "none qualifies, the lowest false-restart rate")


def base_hf():
    """A fresh float32 copy of the embedded model (transformers module) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from esr_utils.models import embedded_dense_dir

    folder = embedded_dense_dir()
    return (AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(str(folder)))


def base_tokenizer():
    """The embedded model's tokenizer (from its cached dense folder)."""
    from transformers import AutoTokenizer

    from esr_utils.models import embedded_dense_dir

    return AutoTokenizer.from_pretrained(str(embedded_dense_dir()))


def as_loaded(hf, tokenizer, name: str = "smollm2-135m-esr", *, spec=None) -> LoadedModel:
    """Wrap a (merged) transformers model as a `LoadedModel`, so generation and steering apply."""
    from nnsight import TransformersModel

    return LoadedModel(lm=TransformersModel(hf, tokenizer=tokenizer),
                       spec=spec or get_spec(name), device="cpu")


def trained_variant(peft_model, folder: Path, name: str) -> LoadedModel:
    """A notebook-trained adapter saved to `folder`, loaded back merged as a model of its own:
    its spec points at `folder`, so its results are keyed by this adapter's hash, not the
    shipped organism's."""
    from esr_utils.finetuning.organism import load_adapter, save_adapter

    save_adapter(peft_model, folder)
    hf, tok = base_hf()
    merged = load_adapter(hf, folder, verify=False).merge_and_unload()
    spec = replace(get_spec("smollm2-135m-esr"), name=name, adapter=str(folder))
    return as_loaded(merged, tok, spec=spec)


def prefill_prefixes(data: dict, prompt_ids: Sequence[int], prompts: Sequence[str], seed: int
                     ) -> list[tuple[str, str, dict]]:
    """(prompt, off-topic prefix, provenance) for prompts: the prompt's own steered passage where
    it drifted far enough, else 1–2 sentences of another listed prompt's answer."""
    rng = random.Random(seed)
    limit = data["settings"]["max_passage_similarity"]
    out = []
    for i in prompt_ids:
        p = data["passages"].get(str(i))
        if p and p["text"] and p["similarity"] <= limit:
            out.append((prompts[i], p["text"], {"source": "steered", "latent": p["latent"]}))
            continue
        other = rng.choice([j for j in prompt_ids if j != i])
        text = first_sentences(data["answers"][str(other)], 2) or data["answers"][str(other)]
        out.append((prompts[i], text, {"source": "unrelated_answer", "partner": other}))
    return out


def train_variant(examples: Sequence[Example], fraction: float, r: LoraRecipe, *, seed: int,
                  steer_rows=None, layer: int = 18, progress: bool = True):
    """Mix, then train a fresh adapter on a fresh base copy; returns (TrainResult, mixture)."""
    sc = [e for e in examples if e.kind == "self_correction"]
    normal = [e for e in examples if e.kind == "normal"]
    total = r.n_examples or min(len(sc) + len(normal),
                                int(min(len(sc) / max(fraction, 1e-9),
                                        len(normal) / max(1 - fraction, 1e-9))))
    mixture = mix_examples(sc, normal, fraction, total, seed)
    hf, tok = base_hf()
    result = train_lora(hf, tok, mixture, r, seed=seed, steer_rows=steer_rows, layer=layer,
                        progress=progress)
    return result, mixture, tok


def validation_scores(model: LoadedModel, prefixes, *, n_seeds: int = 2, max_new_tokens: int = 48,
                      answer_tokens: int = 96, seed: int = 0, progress: bool = True,
                      sae=None, steer: Sequence[tuple[int, float]] = ()) -> dict:
    """Prefill restart rate and unsteered false-restart rate on validation prompts, each prompt
    `n_seeds` times; with `sae` and `steer` ((latent, boost) pairs, training pool), also the
    restart rate of answers steered with each pair on every validation prompt."""
    prompts = [p for p, _, _ in prefixes] * n_seeds
    cont = prefill_continuations(model, prompts, [x for _, x, _ in prefixes] * n_seeds,
                                 seeds=[seed + i for i in range(len(prompts))],
                                 max_new_tokens=max_new_tokens, progress=progress)
    prompts = prompts[:len(prefixes)]
    trials = [Trial(p, seed=seed + 100 * s + i) for s in range(n_seeds)
              for i, p in enumerate(prompts)]
    answers = generate_trials(model, trials, sampling=Sampling.for_model(
        model.spec, max_new_tokens=answer_tokens), progress=progress, batch_size=AUTO)
    out = {"prefill": restart_rate(cont), "false_restart": restart_rate(
        [a["response"] for a in answers]), "prefill_texts": cont,
        "answers": [a["response"] for a in answers]}
    if steer:
        trials = [Trial(p, Steering(k, b), seed=seed + 7919 * j + i)
                  for j, (k, b) in enumerate(steer) for i, p in enumerate(prompts)]
        steered = generate_trials(model, trials, sae=sae, sampling=Sampling.for_model(
            model.spec, max_new_tokens=answer_tokens), progress=progress, batch_size=AUTO)
        out["steered"] = restart_rate([a["response"] for a in steered])
        out["steered_texts"] = [a["response"] for a in steered]
    return out


def validation_steering(d_sae: int, n: int, boost_range: tuple[float, float], seed: int
                        ) -> list[tuple[int, float]]:
    """`n` (latent, boost) pairs from the training pool (odd ids), boosts uniform in the range:
    the kind of steering resistance training uses, never the evaluation pool."""
    from esr_utils.latent_selection import latent_pool

    rng = random.Random(seed)
    latents = rng.sample([int(k) for k in latent_pool("training", d_sae)], n)
    return [(k, round(rng.uniform(*boost_range), 1)) for k in latents]


def select_variant(scores: dict[str, dict], fractions: dict[str, float]) -> tuple[str, str]:
    """Apply `SELECTION_RULE`; returns (variant name, why)."""
    ok = [v for v, s in scores.items() if s["false_restart"]["rate"] <= 0.02]
    if ok:
        best = max(ok, key=lambda v: (scores[v].get("steered", {"rate": 0.0})["rate"],
                                      scores[v]["prefill"]["rate"], -fractions[v]))
        return best, ("highest steered, then prefill, restart rate with false restarts <= 2%")
    best = min(scores, key=lambda v: (scores[v]["false_restart"]["rate"], fractions[v]))
    return best, "no variant had false restarts <= 2%: lowest false-restart rate taken"


@torch.no_grad()
def sae_fit(sae, hf_models: dict[str, object], tokenizer, texts: Sequence[str], layer: int = 18
            ) -> dict[str, dict]:
    """FVE and loss recovered of `sae` on each model's residuals over the same chat texts."""
    from esr_utils.saes.training.evaluate import evaluate_sae

    rows = [tokenizer(t, add_special_tokens=False)["input_ids"][:256] for t in texts]
    width = max(map(len, rows))
    tokens = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, :len(row)] = torch.tensor(row)
    out = {}
    for name, hf in hf_models.items():
        m = evaluate_sae(sae, hf, tokens, layer)
        out[name] = {k: round(m[k], 4) for k in ("fve", "loss_recovered", "ce_clean",
                                                 "ce_spliced", "l0")}
    return out


def variant_recipe(r: LoraRecipe, resistance: bool) -> LoraRecipe:
    return replace(r, resistance=resistance)
