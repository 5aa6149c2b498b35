"""Choosing latents to steer: random candidates, then the paper's relevance and concreteness filters.

Relevance has two readings (`paper.md` §3.3), both implemented:

* "prompt-tokens" (the upstream code): keep a latent only if it never fires on any prompt token;
* "response-top-k" (the paper's text): drop the `k` latents most active, on average, in the
  unsteered answers to each prompt.

Concreteness needs labels. With an API key an LLM grader can rate them (chapter 2 states which
grader a run used); offline we use a documented proxy on the label store: how much a latent's
top-activating tokens are whole content words rather than punctuation, fragments or function
words.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np
import torch

from esr_utils.generation import tokenize_texts
from esr_utils.models import LoadedModel

__all__ = ["latent_pool", "sample_candidates", "latent_activation_stats", "relevant_by_prompt_tokens",
           "relevant_by_response_top_k", "concreteness_proxy", "grade_concreteness",
           "select_latents"]

_STOPWORDS = set("""a an and are as at be been but by can do does for from had has have he her his
i if in into is it its me my no not of on or our she so than that the their them then there
these they this to up us was we were what when which who will with you your how also just
""".split())
_WORD = re.compile(r"^[A-Za-z]{3,}$")


LATENT_POOLS = ("evaluation", "training")


def latent_pool(kind: str, d_sae: int) -> np.ndarray:
    """The latent ids a use may draw from: even ids for evaluation, odd ids for training.

    Chapters that measure ESR steer only with evaluation latents; the fine-tuning chapter builds
    its off-topic passages only with training latents, so no evaluated latent is ever trained on,
    whichever SAE (and however many latents) a run uses.
    """
    if kind not in LATENT_POOLS:
        raise ValueError(f"latent pool must be one of {LATENT_POOLS}, got {kind!r}")
    if d_sae < 2:
        raise ValueError(f"an SAE needs at least 2 latents to split into pools, got {d_sae}")
    return np.arange(0 if kind == "evaluation" else 1, d_sae, 2)


def sample_candidates(d_sae: int, n: int, seed: int, exclude: Sequence[int] = ()) -> list[int]:
    """`n` distinct random latent ids (reproducible from `seed`), none of `exclude`."""
    pool = np.setdiff1d(np.arange(d_sae), np.asarray(list(exclude), dtype=int))
    if n > len(pool):
        raise ValueError(f"asked for {n} candidates but only {len(pool)} latents are eligible")
    return sorted(np.random.default_rng(seed).choice(pool, size=n, replace=False).tolist())


@torch.no_grad()
def latent_activation_stats(model: LoadedModel, sae, texts: Sequence[str], layer: int,
                            batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per text, each latent's max and mean activation over its tokens: two [n_texts, d_sae].

    `texts` are already chat-formatted. The first position is left out: its residual norm is an
    outlier (chapter 1) and SAEs fire on it in ways unrelated to content.
    """
    layer = model.spec.check_layer(layer)
    maxima, means = [], []
    for start in range(0, len(texts), batch_size):
        batch = tokenize_texts(model.tokenizer, texts[start:start + batch_size])
        with model.lm.trace(dict(batch), remote=model.remote):
            hidden = model.layer(layer).output.save()
        mask = batch["attention_mask"].bool()
        for row in range(hidden.shape[0]):
            h = hidden[row][mask[row]][1:].to(sae.W_enc.device, sae.W_enc.dtype)
            acts = sae.encode(h)
            maxima.append(acts.amax(dim=0).float().cpu())
            means.append(acts.mean(dim=0).float().cpu())
    return torch.stack(maxima), torch.stack(means)


def relevant_by_prompt_tokens(candidates: Sequence[int], prompt_max: torch.Tensor) -> list[int]:
    """Upstream reading: keep latents whose activation is exactly 0 on every prompt token."""
    silent = (prompt_max == 0).all(dim=0)
    return [k for k in candidates if bool(silent[k])]


def relevant_by_response_top_k(candidates: Sequence[int], response_mean: torch.Tensor,
                               k: int = 100) -> list[int]:
    """Paper reading: drop the top-`k` latents by mean activation in each unsteered answer."""
    top = set(response_mean.topk(min(k, response_mean.shape[1]), dim=1).indices.flatten().tolist())
    return [c for c in candidates if c not in top]


def _whole_content_word(example: dict) -> bool:
    """The example's token starts a word, is a whole word (the context does not continue it),
    has three or more letters and is not a function word."""
    token = example["token"]
    word = token.strip().lower()
    if not token.startswith(" ") or not _WORD.match(word) or word in _STOPWORDS:
        return False
    context = example.get("context", "")
    close = context.find("]", context.find("["))
    following = context[close + 1: close + 2] if close >= 0 else ""
    return not following.isalpha()


def concreteness_proxy(entry: dict) -> float:
    """Offline stand-in for the paper's LLM concreteness rating, 0–100, from a label entry.

    The share of the latent's top-activating examples whose token is a whole content word: a
    latent firing on " dog", " lion", " cat" scores high; one firing on commas, "the" or word
    fragments (" comed" in "comedy") scores low. The promoted (logit-lens) tokens are left out:
    for a 135M model they are mostly sub-word noise.
    """
    examples = entry.get("top", [])
    if not examples:
        return 0.0
    return round(100 * sum(_whole_content_word(ex) for ex in examples) / len(examples), 1)


_GRADER_SYSTEM = ("You rate short descriptions of sparse-autoencoder latents for how concrete and "
                  "domain-specific they are. Reply with JSON only.")
_GRADER_TASK = """Rate each latent label from 0 to 100: 0 = very abstract or general (grammar,
punctuation, conversational moves such as "the assistant asks for clarification"), 100 = a very
concrete, domain-specific topic or object (e.g. "Hawaiian tourism itineraries", "violin parts").
Answer with a JSON list with one object per label, in the same order:
[{"label": "...", "rating": 57}, ...]
Labels:
"""


def grade_concreteness(labels: dict[int, str], backend, batch_size: int = 50) -> dict[int, float]:
    """The paper's LLM concreteness rating (0–100) for labelled latents, `batch_size` per call.

    `backend` is a judging backend (`complete(system, user) -> str`), e.g.
    `AnthropicBackend("claude-sonnet-4-5-20250929")` as in the paper. A batch whose reply cannot be
    read raises, naming the batch: upstream silently rated such batches 0, which biases selection.
    """
    ids = list(labels)
    ratings: dict[int, float] = {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        reply = backend.complete(_GRADER_SYSTEM, _GRADER_TASK + json.dumps(
            [labels[k] for k in chunk], ensure_ascii=False))
        text = reply[reply.find("["): reply.rfind("]") + 1]
        try:
            rows = json.loads(text)
            values = [float(row["rating"]) for row in rows]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"unreadable concreteness ratings for latents {chunk[0]}…"
                             f"{chunk[-1]}: {err}; reply was {reply[:300]!r}") from None
        if len(values) != len(chunk) or not all(0 <= v <= 100 for v in values):
            raise ValueError(f"expected {len(chunk)} ratings in 0–100 for latents {chunk[0]}…"
                             f"{chunk[-1]}, got {values[:10]}")
        ratings.update(zip(chunk, values))
    return ratings


def select_latents(candidates: Sequence[int], *, relevant: Sequence[int],
                   concreteness: dict[int, float] | None, n: int | None = None,
                   min_concreteness: float | str = "median") -> list[int]:
    """The first `n` candidates passing both filters (all of them if `n` is None), in candidate
    order (as upstream).

    `min_concreteness` is a number, or "median" (the paper: drop labels below the median rating).
    `concreteness=None` skips that filter (SAEs without labels).
    """
    keep = [c for c in candidates if c in set(relevant)]
    if concreteness is not None:
        rated = [concreteness[c] for c in keep if c in concreteness]
        cut = float(np.median(rated)) if min_concreteness == "median" and rated \
            else float(min_concreteness if min_concreteness != "median" else 0)
        keep = [c for c in keep if concreteness.get(c, -1.0) >= cut]
    if n is None:
        return keep
    if len(keep) < n:
        raise ValueError(f"only {len(keep)} candidates pass the filters, {n} wanted: sample more")
    return keep[:n]
