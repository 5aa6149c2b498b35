"""Batched, seeded generation of many trials, each row with its own steering and its own sampler.

A trial may force the start of the answer (`Trial.assistant_prefix`): the prefix's tokens are
placed right after the chat template's assistant header and teacher-forced, and the model
continues from them. Its record keeps the prefix and the continuation apart and gives the judge
both as `response` (prefix + continuation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from esr_utils.batching import left_pad, resolve_batching, run_batches, stop_ids, turn_ids
from esr_utils.config import check_compute
from esr_utils.models import LoadedModel
from esr_utils.prompts import chat_text
from esr_utils.provenance import describe_changes, digest, trial_provenance
from esr_utils.saes import SaeSlice, slice_sae
from esr_utils.sampling import Sampling, SeededSampler
from esr_utils.steering import Steering, plan_interventions

__all__ = ["Sampling", "Trial", "SeededSampler", "generate_trials", "tokenize_chats",
           "tokenize_texts", "tokenize_turns"]


@dataclass(frozen=True)
class Trial:
    """One generation: a user prompt, what is done to the residual stream, and its own seed.

    `assistant_prefix` is text the answer is forced to start with ("" or None: none), tokenized
    on its own; `prefix_tokens` forces exact token ids instead (e.g. the first tokens a model
    wrote, never re-tokenized), and then `assistant_prefix` must be empty. The steering applies
    to a forced prefix as to every other token.
    """

    prompt: str
    steering: Steering = field(default_factory=Steering)
    seed: int = 0
    assistant_prefix: str = ""
    prefix_tokens: tuple[int, ...] = ()

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"a trial needs a non-empty prompt, got {self.prompt!r}")
        if self.assistant_prefix is None:
            object.__setattr__(self, "assistant_prefix", "")
        if not isinstance(self.assistant_prefix, str):
            raise ValueError(f"assistant_prefix must be text (or None), got "
                             f"{type(self.assistant_prefix).__name__}")
        tokens = tuple(self.prefix_tokens or ())
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
            raise ValueError(f"prefix_tokens must be token ids (ints ≥ 0), got {tokens[:8]!r}")
        if tokens and self.assistant_prefix:
            raise ValueError("give the forced opening as assistant_prefix (text) or as "
                             "prefix_tokens (ids), not both")
        object.__setattr__(self, "prefix_tokens", tokens)

    @property
    def uses_sae(self) -> bool:
        return self.steering.latent_id is not None or bool(self.steering.ablate)

    def content_id(self, model: str, layer: int, sampling: Sampling) -> str:
        """Id of what the trial asks for (its inputs), whatever code or SAE carries it out."""
        payload = dict(model=model, layer=layer, sampling=asdict(sampling), prompt=self.prompt,
                       steering=self.steering.key(), seed=self.seed)
        if self.assistant_prefix:  # absent when empty, so prefix-less ids stay as they were
            payload["assistant_prefix"] = self.assistant_prefix
        if self.prefix_tokens:
            payload["prefix_tokens"] = list(self.prefix_tokens)
        return digest(payload)[:16]

    def trial_id(self, model: str, layer: int, sampling: Sampling,
                 provenance: dict | None = None) -> str:
        """Stable id of everything that determines this trial's text: its inputs and, when
        given, the `provenance` (code, library versions, SAE and adapter hashes)."""
        content = self.content_id(model, layer, sampling)
        if provenance is None:
            return content
        return digest([content, provenance])[:16]


def tokenize_chats(tokenizer, prompts: Sequence[str]) -> dict:
    """Chat-format user prompts and tokenize them as one left-padded batch."""
    return tokenize_texts(tokenizer, [chat_text(tokenizer, p) for p in prompts])


def tokenize_texts(tokenizer, texts: Sequence[str]) -> dict:
    """Tokenize already chat-formatted texts as one left-padded batch."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the chat template already holds the special tokens, so add none
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def tokenize_turns(tokenizer, prompts: Sequence[str], prefixes: Sequence[str]) -> dict:
    """Chat-format user prompts, each followed by its assistant prefix, as one left-padded batch.

    The prefix is tokenized on its own and appended to the chat tokens, so its tokens are
    exactly `tokenizer(prefix)` and never merge with the template's assistant header. With no
    prefix at all this is `tokenize_chats`.
    """
    if len(prompts) != len(prefixes):
        raise ValueError(f"{len(prefixes)} prefixes for {len(prompts)} prompts")
    if not any(prefixes):
        return tokenize_chats(tokenizer, prompts)
    return left_pad(tokenizer, [turn_ids(tokenizer, p, x) for p, x in zip(prompts, prefixes)])


def generate_trials(
    model: LoadedModel,
    trials: Sequence[Trial],
    *,
    sae=None,
    sampling: Sampling | None = None,
    layer: int | None = None,
    batch_size: int | str = 8,
    refill_fraction: float | None = None,
    store=None,
    progress: bool = True,
    on_batch: Callable[[list[dict]], None] | None = None,
    compute: str = "allow",
) -> list[dict]:
    """Generate every trial (skipping those already in `store`) and return one record per trial.

    Args:
        model: from `load_model`.
        trials: what to generate; all inputs are checked before any generation starts.
        sae: a sae-lens SAE or an `SaeSlice` holding every steered and ablated latent.
        sampling: defaults to the model spec's settings.
        layer: steering layer; defaults to the spec's.
        batch_size: rows per forward pass, or "auto" (from free GPU memory, refilled on a
            GPU; see `batching.resolve_batching`); results do not depend on it beyond
            floating-point rounding (see `esr_utils.batching`).
        refill_fraction: pause a batch once this share of its rows has finished and refill it
            with queued trials (`batching.run_batches`); None runs each batch to its end.
            Results do not depend on it beyond floating-point rounding.
        store: a `ResultsStore`; records are appended as each batch finishes.
        on_batch: called with each batch's records after they are stored.
        compute: "allow", or "cache-only" to fail instead of generating what `store` lacks.

    A stored trial is reused only if it was made by the same code (the modules on the
    generation path), library versions, SAE and adapter: all are part of its `trial_id`.
    """
    check_compute(compute)
    spec = model.spec
    layer = spec.check_layer(spec.steering_layer if layer is None else layer)
    sampling = sampling or Sampling.for_model(spec)
    if not trials:
        raise ValueError("no trials to generate: the prompt or trial list is empty")
    batch_size, refill_fraction = resolve_batching(batch_size, refill_fraction, model, trials,
                                                   sampling)
    steer_ids = {t.steering.latent_id for t in trials if t.steering.latent_id is not None}
    ablate_ids = {k for t in trials for k in t.steering.ablate}
    sae_for_key = sae  # the full SAE when given one: keys do not depend on slicing
    if sae is not None and not isinstance(sae, SaeSlice):
        sae = slice_sae(sae, steer_ids, ablate_ids)
    # a plan over all trials validates widths and ids up front
    plan_interventions([t.steering for t in trials], sae, d_model=spec.d_model)

    with_sae = trial_provenance(spec, sae_for_key)
    without_sae = {**with_sae, "sae": None}
    provenances = [with_sae if t.uses_sae else without_sae for t in trials]
    contents = [t.content_id(spec.name, layer, sampling) for t in trials]
    ids = [t.trial_id(spec.name, layer, sampling, p) for t, p in zip(trials, provenances)]
    records = {r["trial_id"]: r for r in store.records()} if store is not None else {}
    todo = [(i, t) for i, t in zip(ids, trials) if i not in records]
    if todo and compute == "cache-only":
        raise RuntimeError(_cache_only_message(store, records, todo, ids, contents, provenances,
                                               len(trials)))
    extra = {i: {"content_id": c, "provenance": p} for i, c, p in zip(ids, contents, provenances)}
    # batching similar lengths together wastes less padding; results do not depend on order
    todo.sort(key=lambda it: len(it[1].prompt) + len(it[1].assistant_prefix)
              + 4 * len(it[1].prefix_tokens))
    bar = tqdm(total=len(trials), initial=len(trials) - len(todo), unit="trial",
               desc=f"generating (batch {batch_size}"
                    + (f", refilled at {refill_fraction:.0%} done)" if refill_fraction else ")"),
               disable=not progress)
    stops = stop_ids(model)
    for finished in run_batches(model, todo, sae=sae, layer=layer, sampling=sampling,
                                batch_size=batch_size, refill_fraction=refill_fraction):
        batch_records = []
        for done in finished:
            record = _record(model, done.trial, done.key, done.tokens, stops, layer, sampling)
            record["batch_seconds"] = round(done.seconds, 3)
            record.update(extra[done.key])
            batch_records.append(record)
            records[done.key] = record
        if store is not None:
            store.append(batch_records)
        if on_batch is not None:
            on_batch(batch_records)
        bar.update(len(finished))
    bar.close()
    return [records[i] for i in ids]


def _cache_only_message(store, records, todo, ids, contents, provenances, n_trials) -> str:
    """Why a cache-only run cannot proceed: trials never made, or made by other code/SAE."""
    where = store.path if store is not None else "no store"
    by_content = {}
    for r in records.values():
        if "content_id" in r:
            by_content.setdefault(r["content_id"], r)
    position = {i: n for n, i in enumerate(ids)}
    changes, outdated = {}, 0
    for trial_id, _ in todo:
        n = position[trial_id]
        old = by_content.get(contents[n])
        if old is not None:
            outdated += 1
            for change in describe_changes(old.get("provenance") or {}, provenances[n]):
                changes[change] = changes.get(change, 0) + 1
    message = f"COMPUTE='cache-only' but {len(todo)} of {n_trials} trials are not in {where}"
    if outdated:
        listed = "; ".join(f"{c} ({k} trials)" for c, k in changes.items()) or "unknown"
        message += (f"; {outdated} of them are stored but were made by other code or inputs, "
                    f"so they are outdated: {listed}")
    elif records and not by_content:
        message += "; the stored trials predate code fingerprints, so none can be reused"
    return message + "; rerun with COMPUTE='allow' to generate them"


def _record(model: LoadedModel, trial: Trial, trial_id: str, tokens: list[int],
            stops: frozenset[int], layer: int, sampling: Sampling) -> dict:
    tok = model.tokenizer
    end = next((i for i, t in enumerate(tokens) if t in stops), None)
    hit_eos = end is not None
    token_list = tokens[:end] if hit_eos else list(tokens)
    text = tok.decode(token_list, skip_special_tokens=True)
    # with a forced prefix, `response` is what the judge grades (prefix + continuation) and the
    # continuation is kept apart; `n_new_tokens` counts generated tokens only
    prefix, forced = trial.assistant_prefix, {}
    if trial.prefix_tokens:
        prefix = tok.decode(list(trial.prefix_tokens), skip_special_tokens=True)
        forced = {"prefix_tokens": list(trial.prefix_tokens)}
    if prefix:
        forced.update({"assistant_prefix": prefix, "continuation": text,
                       "n_prefix_tokens": len(trial.prefix_tokens) or len(
                           tok(prefix, add_special_tokens=False)["input_ids"])})
    return {
        "trial_id": trial_id,
        "model": model.spec.name,
        "layer": layer,
        "prompt": trial.prompt,
        "latent_id": trial.steering.latent_id,
        "boost": trial.steering.boost,
        "ablate": list(trial.steering.ablate),
        **({} if trial.steering.steer_tokens is None
           else {"steer_tokens": trial.steering.steer_tokens}),
        "seed": trial.seed,
        **asdict(sampling),
        "response": prefix + text,
        # the generated ids themselves, so a later chapter can force exactly these tokens
        "tokens": token_list,
        "n_new_tokens": len(token_list),
        "hit_eos": hit_eos,
        **forced,
    }
