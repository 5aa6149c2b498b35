"""Train mixtures, score them on validation prompts, pick one by a fixed rule, check the SAE fit.

The selection rule is fixed before any adapter is trained and uses validation prompts only
(training prompts held out of training, never the 38 evaluation prompts):

    among variants whose unsteered false-restart rate on the validation prompts is <= 2%,
    take the highest prefill restart rate; ties go to the smaller self-correction fraction.
    If none is <= 2%, take the lowest false-restart rate (and say so in the card).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

import torch

from esr_utils.finetuning.evaluation import prefill_continuations, restart_rate
from esr_utils.finetuning.examples import Example, first_sentences, mix_examples
from esr_utils.finetuning.training import LoraRecipe, train_lora
from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.models import LoadedModel, get_spec

__all__ = [
    "SELECTION_RULE",
    "as_loaded",
    "base_hf",
    "base_tokenizer",
    "prefill_prefixes",
    "sae_fit",
    "select_variant",
    "train_variant",
    "validation_scores",
]

SELECTION_RULE = ("highest validation prefill restart rate among variants with unsteered "
                  "validation false-restart rate <= 2%; ties to the smaller self-correction "
                  "fraction; if none qualifies, the lowest false-restart rate")


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


def as_loaded(hf, tokenizer, name: str = "smollm2-135m-esr") -> LoadedModel:
    """Wrap a (merged) transformers model as a `LoadedModel`, so generation and steering apply."""
    from nnsight import TransformersModel

    return LoadedModel(lm=TransformersModel(hf, tokenizer=tokenizer), spec=get_spec(name),
                       device="cpu")


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
                      answer_tokens: int = 96, seed: int = 0, progress: bool = True) -> dict:
    """Prefill restart rate and unsteered false-restart rate on validation prompts, each prompt
    `n_seeds` times."""
    prompts = [p for p, _, _ in prefixes] * n_seeds
    cont = prefill_continuations(model, prompts, [x for _, x, _ in prefixes] * n_seeds,
                                 seeds=[seed + i for i in range(len(prompts))],
                                 max_new_tokens=max_new_tokens, progress=progress)
    prompts = prompts[:len(prefixes)]
    trials = [Trial(p, seed=seed + 100 * s + i) for s in range(n_seeds)
              for i, p in enumerate(prompts)]
    answers = generate_trials(model, trials, sampling=Sampling.for_model(
        model.spec, max_new_tokens=answer_tokens), progress=progress, batch_size=24)
    return {"prefill": restart_rate(cont), "false_restart": restart_rate(
        [a["response"] for a in answers]), "prefill_texts": cont,
        "answers": [a["response"] for a in answers]}


def select_variant(scores: dict[str, dict], fractions: dict[str, float]) -> tuple[str, str]:
    """Apply `SELECTION_RULE`; returns (variant name, why)."""
    ok = [v for v, s in scores.items() if s["false_restart"]["rate"] <= 0.02]
    if ok:
        best = max(ok, key=lambda v: (scores[v]["prefill"]["rate"], -fractions[v]))
        return best, "highest prefill restart rate with false restarts <= 2%"
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
