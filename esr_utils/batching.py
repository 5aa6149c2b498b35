"""How trials are packed into forward passes: the batch size, and refilling a batch whose rows
have finished.

A batch that simply runs to its end steps every row until the longest answer stops: rows that
ended early ride along as padding. With refilling, generation pauses as soon as a given fraction of
the rows has finished; those rows are stored, queued trials take their places, and the unfinished
rows continue from their tokens so far (re-read in one forward pass, each row's sampler resuming at
its own step). A trial sees the same input, the same steering at every position and the same
per-row random draws whatever the batch (`tests/unit/test_batching.py`). Its tokens can still
differ in rare cases: a matmul's kernel may sum in an order that depends on the number of rows,
so logits differ in their last bits between batch shapes, and where two tokens are almost tied
the same draw can pick the other. Between batches of 24 and 48 on 2 CPU cores, 2 of 48 steered
96-token answers differed, both only after their first 120 characters.

    batch_size = auto_batch_size(model, prompt_tokens=120, max_new_tokens=512)
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from esr_utils.prompts import chat_text
from esr_utils.sampling import Sampling, SeededSampler
from esr_utils.steering import plan_interventions

__all__ = ["AUTO", "CPU_BATCH_SIZE", "REMOTE_BATCH_SIZE", "auto_batch_size", "resolve_batching",
           "turn_ids", "left_pad", "stop_ids", "Finished", "run_batches"]

AUTO = "auto"
# the embedded model's steered trials per minute on 2 cores, for the chapters' 96-token answers
# (128 trials; `make bench`'s batch sweep, appendix A3): 52 at batch 32, 63 at 64, 76 at 128, and
# in a second run 69 at 64, 78 at 128. The matmuls of a decoding step run far below the machine's
# peak with few rows. Before the sampler worked in place, 128 rows were slower than 64 (39.6
# against 48.5), probably from its fresh [rows x vocab] float64 buffers
CPU_BATCH_SIZE = 128
# NDIF schedules its own GPUs; 32 rows per request keeps one request's wait and payload modest
REMOTE_BATCH_SIZE = 32
MAX_AUTO_BATCH_SIZE = 256
AUTO_REFILL_FRACTION = 0.5
# share of free GPU memory a batch may plan for: allocator fragmentation and the sampler's copies
# take the rest
_MEMORY_SHARE = 0.8
_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}


def _config_sizes(config) -> tuple[int, int, int, int, int, int]:
    """(layers, kv heads, head dim, hidden, intermediate, vocab) from a transformers config."""
    text = getattr(config, "text_config", None) or config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return (text.num_hidden_layers, kv_heads, head_dim, text.hidden_size,
            getattr(text, "intermediate_size", 4 * text.hidden_size), text.vocab_size)


def bytes_per_row(config, dtype: torch.dtype, context_tokens: int) -> int:
    """GPU memory one generation row needs beyond the weights, at its longest.

    The KV cache of every layer over the whole context, plus the largest transient of a prefill
    (one layer's MLP activations over the prompt) and the float32 logits of the last position.
    """
    layers, kv_heads, head_dim, hidden, intermediate, vocab = _config_sizes(config)
    size = _BYTES.get(dtype, 4)
    kv_cache = 2 * layers * kv_heads * head_dim * size * context_tokens
    transient = (2 * intermediate + 4 * hidden) * size * context_tokens
    return kv_cache + transient + 4 * vocab


def auto_batch_size(model, *, prompt_tokens: int, max_new_tokens: int,
                    free_bytes: int | None = None) -> int:
    """The batch size for generation on this model's device.

    On a CUDA device: as many rows as fit in 80% of the free memory (`free_bytes`, read from the
    device when not given), at most 256. On the CPU: 128, the fastest batch measured. On NDIF: 32.
    """
    if model.remote:
        return REMOTE_BATCH_SIZE
    if not str(model.device).startswith("cuda") and free_bytes is None:
        return CPU_BATCH_SIZE
    if free_bytes is None:
        free_bytes, _total = torch.cuda.mem_get_info(torch.device(model.device))
    per_row = bytes_per_row(model.hf.config, model.hf.dtype, prompt_tokens + max_new_tokens)
    rows = int(free_bytes * _MEMORY_SHARE // per_row)
    if rows < 1:
        context = prompt_tokens + max_new_tokens
        raise RuntimeError(f"{model.spec.name}: one row of {context} tokens needs "
                           f"{per_row / 1e9:.2f} GB but only {free_bytes / 1e9:.2f} GB of GPU "
                           "memory are free: free memory, lower MAX_NEW_TOKENS or use a larger GPU")
    return min(rows, MAX_AUTO_BATCH_SIZE)


def resolve_batching(batch_size: int | str, refill_fraction: float | None, model,
                     trials: Sequence, sampling: Sampling) -> tuple[int, float | None]:
    """(rows per batch, refill fraction) for a run.

    An int batch size and the refill fraction are taken as given. "auto" sizes the batch with
    `auto_batch_size` (by the longest prompt) and, on a local GPU, where a decoding step costs
    about the same however many rows are live, refills a batch once half its rows have finished.
    """
    if batch_size != AUTO:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int ≥ 1 or 'auto', got {batch_size!r}")
        return batch_size, refill_fraction
    longest = max(len(_trial_ids(model.tokenizer, t)) for t in trials)
    size = auto_batch_size(model, prompt_tokens=longest, max_new_tokens=sampling.max_new_tokens)
    on_gpu = not model.remote and str(model.device).startswith("cuda")
    if refill_fraction is None and on_gpu:
        refill_fraction = AUTO_REFILL_FRACTION
    return size, refill_fraction


def turn_ids(tokenizer, prompt: str, prefix: str = "",
             prefix_tokens: Sequence[int] = ()) -> list[int]:
    """One user turn in the chat template, then the assistant prefix: `prefix_tokens` as given,
    or `prefix` tokenized on its own (so its tokens are exactly `tokenizer(prefix)` and never
    merge with the assistant header)."""
    ids = list(tokenizer(chat_text(tokenizer, prompt), add_special_tokens=False)["input_ids"])
    if prefix:
        ids += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    return ids + list(prefix_tokens)


def _trial_ids(tokenizer, trial) -> list[int]:
    return turn_ids(tokenizer, trial.prompt, trial.assistant_prefix,
                    getattr(trial, "prefix_tokens", ()))


def left_pad(tokenizer, rows: Sequence[Sequence[int]]) -> dict:
    """Token id rows as one left-padded batch (`input_ids`, `attention_mask`)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def stop_ids(model) -> frozenset[int]:
    """Every token that ends an answer: the tokenizer's end-of-sequence and the generation
    config's (Gemma-2 ends its turns with <end_of_turn>, Llama-3 with <|eot_id|>)."""
    ids = {model.tokenizer.eos_token_id}
    config_ids = getattr(getattr(model.hf, "generation_config", None), "eos_token_id", None)
    ids.update(config_ids if isinstance(config_ids, (list, tuple)) else [config_ids])
    return frozenset(i for i in ids if i is not None)


class _PauseWhenFinished(StoppingCriteria):
    """Stops the whole batch once `needed` rows have produced an end-of-answer token."""

    def __init__(self, start: int, stops: frozenset[int], needed: int):
        self.start, self.stops, self.needed = start, torch.tensor(sorted(stops)), needed

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.start:]
        done = torch.isin(new, self.stops.to(new.device)).any(dim=-1)
        return done.new_full(done.shape, bool(done.sum() >= self.needed))


def generate_rows(model, rows: Sequence[Sequence[int]], seeds: Sequence[int],
                  steps_done: Sequence[int], plan, layer: int, sampling: Sampling,
                  max_new_tokens: int, pause_after: int | None = None) -> torch.Tensor:
    """Generate up to `max_new_tokens` after each id row, steered by `plan` at `layer`.

    Row i's sampler resumes at draw `steps_done[i]`. With `pause_after`, generation stops once
    that many rows have ended. Returns the new tokens, [rows, steps].
    """
    tok = model.tokenizer
    batch = left_pad(tok, rows)
    sampler = SeededSampler(seeds, sampling.temperature, skip=steps_done)
    stopping = None
    if pause_after is not None:
        stopping = StoppingCriteriaList([_PauseWhenFinished(batch["input_ids"].shape[1],
                                                            stop_ids(model), pause_after)])
    plan = plan.to(device=None if model.remote else model.device)
    block = model.layer(layer)
    with warnings.catch_warnings():
        # nnsight warns at the end of every open-ended `tracer.all()` loop that its last
        # iteration was never reached: expected here, since generation decides when to stop
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with model.lm.generate(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=sampling.repetition_penalty,
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=stopping,
            pad_token_id=tok.pad_token_id,
            remote=model.remote,
        ) as tracer:
            with tracer.invoke(dict(batch)):
                for _ in tracer.all():
                    block.output = plan.apply(block.output)
            with tracer.invoke():
                ids = tracer.result.save()
    return ids[:, batch["input_ids"].shape[1]:].cpu()


@dataclass
class Finished:
    """A trial whose generation has ended: its new tokens (through end-of-sequence, if reached)
    and the wall time of the batches it took part in."""

    key: object
    trial: object
    tokens: list[int]
    seconds: float = 0.0


@dataclass
class _Row:
    key: object
    trial: object
    prompt_ids: list[int]
    tokens: list[int] = field(default_factory=list)
    seconds: float = 0.0
    done: bool = False

    def take(self, new: list[int], stops: frozenset[int], limit: int) -> None:
        end = next((i for i, t in enumerate(new) if t in stops), None)
        if end is not None:  # what follows the end is padding
            new = new[:end + 1]
            self.done = True
        self.tokens += new
        if len(self.tokens) >= limit:
            del self.tokens[limit:]
            self.done = True


def _schedule(plan, active: Sequence[_Row], steps: int):
    """The plan and round length for rows steered only for their first `steer_tokens` tokens.

    A row still inside its steered span is steered everywhere, and the round ends when its
    span does. A row past it is steered on the positions read while it was on (the input and
    its first `steer_tokens` - 1 answer tokens) and on no new position. Rows steered
    throughout need no schedule, so a batch of them runs exactly as before.
    """
    spans = [r.trial.steering.steer_tokens for r in active]
    if all(k is None for k in spans):
        return plan, steps
    width = max(len(r.prompt_ids) + len(r.tokens) for r in active)
    read = torch.ones(len(active), width)
    step = torch.ones(len(active))
    for i, (row, k) in enumerate(zip(active, spans)):
        if k is None:
            continue
        if len(row.tokens) < k:
            steps = min(steps, k - len(row.tokens))
            continue
        pad = width - len(row.prompt_ids) - len(row.tokens)
        read[i] = 0.0
        if k > 0:
            read[i, pad:pad + len(row.prompt_ids) + k - 1] = 1.0
        step[i] = 0.0
    return plan.with_schedule(read, step), steps


def run_batches(model, items: Sequence[tuple[object, object]], *, sae, layer: int,
                sampling: Sampling, batch_size: int,
                refill_fraction: float | None = None) -> Iterator[list[Finished]]:
    """Generate every `(key, trial)` in `items`, in order, yielding each batch's finished trials.

    `refill_fraction=None` runs each batch to its end. A fraction in (0, 1] pauses a batch once
    that share of its rows has ended and refills it from the queue (see the module docstring).
    """
    if refill_fraction is not None and not 0 < refill_fraction <= 1:
        raise ValueError(f"refill_fraction must lie in (0, 1], got {refill_fraction}")
    if refill_fraction is not None and model.remote:
        raise ValueError("refilling pauses generation with a local stopping rule; NDIF runs "
                         "cannot use it: pass refill_fraction=None")
    tok, limit, stops = model.tokenizer, sampling.max_new_tokens, stop_ids(model)
    queue = deque(items)
    active: list[_Row] = []
    while queue or active:
        while queue and len(active) < batch_size:
            key, trial = queue.popleft()
            active.append(_Row(key, trial, _trial_ids(tok, trial)))
        pause_after = None
        if refill_fraction is not None and queue:
            pause_after = max(1, round(refill_fraction * len(active)))
        began = time.perf_counter()
        plan = plan_interventions([r.trial.steering for r in active], sae,
                                  d_model=model.spec.d_model)
        plan, steps = _schedule(plan, active, max(limit - len(r.tokens) for r in active))
        new = generate_rows(model, [r.prompt_ids + r.tokens for r in active],
                            [r.trial.seed for r in active], [len(r.tokens) for r in active],
                            plan, layer, sampling, steps, pause_after)
        seconds = time.perf_counter() - began
        for row, tokens in zip(active, new.tolist()):
            row.take(tokens, stops, limit)
            row.seconds += seconds
        finished = [Finished(r.key, r.trial, r.tokens, r.seconds) for r in active if r.done]
        active = [r for r in active if not r.done]
        if finished:
            yield finished
