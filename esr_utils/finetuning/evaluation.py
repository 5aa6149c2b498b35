"""Does the organism restart? Three checks that need no ESR protocol (chapter 6).

* prefill: an off-topic passage is put at the start of the assistant turn, no steering; does the
  model continue with a restart sentence?
* unsteered false restarts: plain answers that contain a restart sentence anyway;
* steered restarts: answers steered with evaluation-pool latents at a few boosts.

The restart measure is deliberately simple and stated: a response *restarts* when one of its
sentences is restart language by `esr_utils.judging.segmenting.is_restart` (the offline judge's
phrase rules) or is, word for word, one of the project's restart sentences (training or
held-out families). Every function takes a `LoadedModel`, so any model (base, organism, or an
adapter trained in a notebook) plugs in, and a later steered-ESR evaluation can reuse them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from esr_utils.batching import AUTO
from esr_utils.finetuning.examples import restart_sentences as family_sentences
from esr_utils.generation import Sampling, SeededSampler, Trial, generate_trials, tokenize_texts
from esr_utils.judging.segmenting import is_restart, split_sentences
from esr_utils.metrics import wilson_interval as wilson
from esr_utils.prompts import chat_text
from esr_utils.steering import Steering

__all__ = [
    "compare_models",
    "prefill_continuations",
    "restart_rate",
    "restart_sentences_in",
    "restarts",
    "steered_responses",
    "wilson",
    "wording_of",
    "wording_shares",
]

_NORM = re.compile(r"[^a-z' ]+")


def _norm(s: str) -> str:
    return " ".join(_NORM.sub(" ", s.lower().replace("’", "'")).split())


def _known() -> dict[str, str]:
    """normalised sentence -> "train" or "held_out"."""
    out = {_norm(s): "train" for _, s in family_sentences(held_out=False)}
    out.update({_norm(s): "held_out" for _, s in family_sentences(held_out=True)})
    return out


def restart_sentences_in(text: str) -> list[str]:
    """The sentences of `text` that are restart language (see the module docstring)."""
    known = _known()
    found = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        if is_restart(sentence) or _norm(sentence) in known:
            found.append(sentence.strip())
    return found


def restarts(text: str) -> bool:
    return bool(restart_sentences_in(text))


def wording_of(sentence: str) -> str:
    """"train" (a training sentence verbatim), "held_out" (a held-out one) or "new"."""
    return _known().get(_norm(sentence), "new")


def wording_shares(sentences: Sequence[str]) -> dict[str, float]:
    """Share of restart sentences per wording class, with the count."""
    kinds = [wording_of(s) for s in sentences]
    n = len(kinds)
    return {"n": n, **{k: (kinds.count(k) / n if n else math.nan)
                       for k in ("train", "held_out", "new")}}


@torch.no_grad()
def prefill_continuations(model, prompts: Sequence[str], prefixes: Sequence[str], *,
                          seeds: Sequence[int], max_new_tokens: int = 48,
                          temperature: float = 0.6, batch_size: int = 32,
                          progress: bool = True) -> list[str]:
    """Continue each `prefix` placed at the start of the assistant turn, unsteered.

    Uses the same per-row seeded sampler as `generate_trials`, on the transformers module.
    """
    if not (len(prompts) == len(prefixes) == len(seeds)):
        raise ValueError("prompts, prefixes and seeds must have the same length")
    tok, hf = model.tokenizer, model.hf
    out = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="prefill", disable=not progress):
        rows = range(start, min(start + batch_size, len(prompts)))
        texts = [chat_text(tok, prompts[i]) + prefixes[i].rstrip() + " " for i in rows]
        batch = tokenize_texts(tok, texts).to(hf.device)
        sampler = SeededSampler([seeds[i] for i in rows], temperature)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*generation flags.*")
            ids = hf.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                              repetition_penalty=model.spec.repetition_penalty,
                              logits_processor=LogitsProcessorList([sampler]),
                              pad_token_id=tok.pad_token_id)
        new = ids[:, batch["input_ids"].shape[1]:]
        out += tok.batch_decode(new, skip_special_tokens=True)
    return out


def steered_responses(model, sae, prompts: Sequence[str], latents: Sequence[int],
                      boosts: Sequence[float], *, seed: int = 0, max_new_tokens: int = 96,
                      batch_size: int | str = AUTO, progress: bool = True) -> list[dict]:
    """One response per (prompt, latent, boost); boost 0 is the unsteered answer."""
    return _responses(model, sae, _response_trials(prompts, latents, boosts, seed),
                      max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)


def _response_trials(prompts: Sequence[str], latents: Sequence[int], boosts: Sequence[float],
                     seed: int) -> list[Trial]:
    return [Trial(p, Steering(k, float(b)) if b else Steering(), seed=seed + 7919 * j + i)
            for j, (k, b) in enumerate((k, b) for k in latents for b in boosts)
            for i, p in enumerate(prompts)]


def _responses(model, sae, trials: Sequence[Trial], *, max_new_tokens: int,
               batch_size: int | str = AUTO, progress: bool = True) -> list[dict]:
    sampling = Sampling.for_model(model.spec, max_new_tokens=max_new_tokens)
    records = generate_trials(model, trials, sae=sae if any(t.uses_sae for t in trials) else None,
                              sampling=sampling, batch_size=batch_size, progress=progress)
    for r in records:
        r["restart_sentences"] = restart_sentences_in(r["response"])
    return records


def restart_rate(texts: Sequence[str]) -> dict:
    """k of n texts with a restart sentence, the share and its Wilson interval."""
    k = sum(restarts(t) for t in texts)
    n = len(texts)
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else math.nan, "ci": (lo, hi)}


def compare_models(models: dict, sae, prompts: Sequence[str], prefixes: Sequence[str], *,
                   latents: Sequence[int], boosts: Sequence[float], n_seeds: int = 1,
                   n_steer_prompts: int | None = None, max_new_tokens: int = 80, seed: int = 0,
                   progress: bool = True) -> dict:
    """The three checks for each named `LoadedModel`, on the same prompts, prefixes and seeds.

    Returns {model: {"prefill": rate, "unsteered": rate, "steered": {boost: rate},
    "records": {...}}}; rates are `restart_rate` dicts. Steered latents should come from the
    evaluation pool (`latent_pool("evaluation", d_sae)`); steered runs use the first
    `n_steer_prompts` prompts (all when None).
    """
    steer_prompts = list(prompts)[:n_steer_prompts]
    out = {}
    for name, model in models.items():
        cont = prefill_continuations(model, prompts, prefixes,
                                     seeds=[seed + i for i in range(len(prompts))],
                                     max_new_tokens=max_new_tokens, progress=progress)
        plain = [t for s in range(n_seeds)
                 for t in _response_trials(prompts, [None], [0.0], seed + 101 * s)]
        steered = _response_trials(steer_prompts, latents, boosts, seed)
        # plain and steered answers in one generation call: fuller batches
        records = _responses(model, sae, plain + steered, max_new_tokens=max_new_tokens,
                             progress=progress)
        plain, steered = records[:len(plain)], records[len(plain):]
        out[name] = {
            "prefill": restart_rate(cont),
            "unsteered": restart_rate([r["response"] for r in plain]),
            "steered": {b: restart_rate([r["response"] for r in steered if r["boost"] == b])
                        for b in boosts},
            "records": {"prefill": [{"prompt": p, "prefix": x, "continuation": c}
                                    for p, x, c in zip(prompts, prefixes, cont)],
                        "unsteered": plain, "steered": steered},
        }
    return out
