"""Choosing latents to steer: random candidates, then the paper's relevance and concreteness filters

Relevance has two readings (the paper's App. A.1.2 and the authors' code), both implemented:

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
from collections.abc import Sequence

import numpy as np
import torch

from esr_utils.judging import make_backend
from esr_utils.models import LoadedModel
from esr_utils.residual import latent_activation_stats

__all__ = ["latent_pool", "sample_candidates", "prompt_token_maxima", "relevant_by_prompt_tokens",
           "relevant_by_response_top_k", "concreteness_proxy", "grade_concreteness",
           "select_latents", "rate_concreteness"]

_STOPWORDS = {"a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does",
              "for", "from", "had", "has", "have", "he", "her", "his", "i", "if", "in", "into",
              "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so",
              "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
              "to", "up", "us", "was", "we", "were", "what", "when", "which", "who", "will", "with",
              "you", "your", "how", "also", "just"}
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


def sample_candidates(d_sae: int, n: int, seed: int, *, pool: str = "evaluation",
                      exclude: Sequence[int] = ()) -> list[int]:
    """`n` distinct random latent ids from `pool`, none of `exclude`, in draw order.

    Draw order matters: selection keeps the first survivors in this order, as the paper's code
    does, so sorting here would favour low ids.
    """
    eligible = np.setdiff1d(latent_pool(pool, d_sae), np.asarray(list(exclude), dtype=int))
    if n > len(eligible):
        raise ValueError(f"asked for {n} candidates but only {len(eligible)} latents of the "
                         f"{pool} pool are eligible: lower the candidate multiplier")
    return np.random.default_rng(seed).choice(eligible, size=n, replace=False).tolist()


def prompt_token_maxima(model: LoadedModel, sae, prompts: Sequence[str],
                        layer: int | None = None, *, skip_first: bool = False) -> torch.Tensor:
    """Each latent's max activation over the tokens of each prompt: [n_prompts, d_sae].

    As the paper's code reads it: the user turn in the chat template *without* the generation
    prompt (no assistant header), every token included, position 0 too unless `skip_first`
    (for SAEs trained without position 0, like the embedded one, whose activations on that
    outlier mean nothing).
    """
    tok = model.tokenizer
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=False,
                                     tokenize=False) for p in prompts]
    layer = model.spec.sae.layer if layer is None else layer
    maxima, _ = latent_activation_stats(model, sae, texts, layer, skip_first=skip_first)
    return maxima


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
    `AnthropicClient("claude-sonnet-4-5-20250929")` as in the paper. A batch whose reply cannot be
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


def rate_concreteness(candidates: Sequence[int], how: str, label_store=None
                      ) -> dict[int, float] | None:
    """Concreteness ratings of the candidates, or None to skip the filter.

    `how`: "proxy" (the offline proxy on the label store; latents without a label rate -1),
    "llm:<judge spec>" (the paper's LLM rating, e.g. "llm:anthropic:claude-sonnet-4-5-20250929")
    or "none". SAEs without offline labels (`label_store` None) skip the filter.
    """
    if how == "none" or label_store is None:
        return None
    if how == "proxy":
        if not hasattr(label_store, "__getitem__"):  # Neuronpedia gives descriptions only
            raise ValueError("CONCRETENESS 'proxy' reads the embedded SAE's top-activating "
                             "examples; for a paper SAE use 'llm:<model spec>' or 'none'")
        return {k: concreteness_proxy(label_store[k]) if label_store.is_live(k) else -1.0
                for k in candidates}
    if how.startswith("llm:"):
        live = {k: label_store.label(k) for k in candidates if label_store.is_live(k)}
        return grade_concreteness(live, make_backend(how.removeprefix("llm:")))
    raise ValueError(f"CONCRETENESS must be 'proxy', 'none' or 'llm:<model spec>', got {how!r}")
