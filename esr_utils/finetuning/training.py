"""LoRA fine-tuning with peft: the paper's recipe (Table 3) as parameters, scaled for CPU.

`RECIPES["paper"]` is Table 3 as the paper ran it on Llama-3.1-8B-Instruct (GPU, Axolotl);
`RECIPES["cpu"]` and `RECIPES["smoke"]` scale it to the 135M embedded model on two CPU cores.
Optionally ("resistance training", beyond the paper) every self-correction example is trained
with a random training-pool steering vector active at the steering layer, so that the restart
and recovery are learned while the residual stream is being pushed off-topic.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from tqdm.auto import tqdm

from esr_utils.finetuning.examples import Example
from esr_utils.finetuning.masking import collate, encode_example

__all__ = ["RECIPES", "LoraRecipe", "TrainResult", "lora_config", "recipe", "train_lora"]


@dataclass(frozen=True)
class LoraRecipe:
    """LoRA and optimiser settings. `scaled` says what differs from the paper's Table 3."""

    rank: int = 32
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 2e-4
    warmup_steps: int = 10
    epochs: float = 4.0
    micro_batch: int = 2
    grad_accum: int = 4
    max_len: int = 4096
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # the paper: adamw_bnb_8bit (8-bit states; no CPU build)
    precision: str = "bf16"
    n_examples: int | None = None  # per mixture; None = all built examples
    max_steps: int | None = None
    resistance: bool = False
    boost_range: tuple[float, float] = (50.0, 110.0)
    scaled: str = ""

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum


RECIPES: dict[str, LoraRecipe] = {
    "paper": LoraRecipe(
        max_len=4096, n_examples=917, precision="bf16", optimizer="adamw_bnb_8bit",
        scaled="none: Table 3 on Llama-3.1-8B-Instruct (Axolotl, GPU), ~917 examples per mixture"),
    "cpu": LoraRecipe(
        rank=16, alpha=32, learning_rate=5e-4, warmup_steps=2, epochs=2.0, micro_batch=8,
        grad_accum=1, max_len=192, precision="fp32", optimizer="adamw", n_examples=96,
        scaled="rank 32->16, alpha 16->32, lr 2e-4->5e-4, 4 epochs->2, batch 8 as 8x1, "
               "seq 4096->192, warmup 10->2, fp32, plain AdamW, 96 examples per mixture "
               "instead of ~917"),
    "organism": LoraRecipe(
        rank=16, alpha=32, learning_rate=5e-4, warmup_steps=2, epochs=2.0, micro_batch=8,
        grad_accum=1, max_len=128, precision="fp32", optimizer="adamw", n_examples=200,
        scaled="rank 32->16, alpha 16->32, lr 2e-4->5e-4, 4 epochs->2, batch 8 as 8x1, "
               "seq 4096->128, warmup 10->2, fp32, plain AdamW, 200 examples per mixture "
               "instead of ~917 (sized for 2 CPU cores)"),
    "smoke": LoraRecipe(
        rank=4, alpha=8, learning_rate=1e-3, warmup_steps=0, epochs=1.0, micro_batch=4,
        grad_accum=1, max_len=96, precision="fp32", optimizer="adamw", n_examples=8,
        max_steps=2, scaled="a few steps on 8 examples: checks the code path only"),
}


def recipe(name: str, **overrides) -> LoraRecipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return replace(RECIPES[name], **overrides)


def lora_config(r: LoraRecipe):
    from peft import LoraConfig

    return LoraConfig(r=r.rank, lora_alpha=r.alpha, lora_dropout=r.dropout,
                      target_modules=r.target_modules, bias="none", task_type="CAUSAL_LM")


@dataclass
class TrainResult:
    model: object  # the peft model (adapter not merged)
    history: list[dict]
    tokens: int
    seconds: float
    recipe: LoraRecipe

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")

    def summary(self) -> dict:
        return {"recipe": asdict(self.recipe), "steps": len(self.history), "tokens": self.tokens,
                "seconds": round(self.seconds, 1),
                "tokens_per_second": round(self.tokens_per_second, 1),
                "final_loss": self.history[-1]["loss"] if self.history else None}


class _RowSteering:
    """Forward hook adding a per-row vector to a decoder block's output (all positions)."""

    def __init__(self):
        self.add: torch.Tensor | None = None

    def __call__(self, module, args, output):
        if self.add is None:
            return output
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + self.add[:, None, :].to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def train_lora(hf_model, tokenizer, examples: Sequence[Example], r: LoraRecipe, *, seed: int = 0,
               steer_rows: dict[int, torch.Tensor] | None = None, layer: int | None = None,
               progress: bool = True) -> TrainResult:
    """Train a LoRA adapter on `examples` (masked per `encode_example`).

    Args:
        hf_model: a transformers causal LM in float32 (wrapped in place by peft).
        steer_rows: for resistance training, {latent_id: W_dec row} of the training-pool latents
            to draw from; each self-correction example gets one of them times a boost drawn
            uniformly from `r.boost_range`, added at `layer`'s output.
    """
    from peft import get_peft_model

    if r.resistance and (not steer_rows or layer is None):
        raise ValueError("resistance training needs steer_rows (training-pool W_dec rows) "
                         "and layer")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = get_peft_model(hf_model, lora_config(r))
    model.train()
    encoded = [encode_example(tokenizer, e, r.max_len) for e in examples]
    order = list(range(len(encoded)))
    n_batches = math.ceil(len(encoded) / r.micro_batch)
    total_steps = math.ceil(n_batches * r.epochs / r.grad_accum)
    if r.max_steps is not None:
        total_steps = min(total_steps, r.max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=r.learning_rate, weight_decay=r.weight_decay)

    def lr_at(step: int) -> float:  # linear warmup, then cosine to 0 (Table 3's scheduler)
        if step < r.warmup_steps:
            return (step + 1) / (r.warmup_steps + 1)
        span = max(1, total_steps - r.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * (step - r.warmup_steps) / span))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    hook, handle = _RowSteering(), None
    if r.resistance:
        handle = model.base_model.model.model.layers[layer].register_forward_hook(hook)
    history, tokens, step, micro = [], 0, 0, 0
    latents = sorted(steer_rows or {})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    bar = tqdm(total=total_steps, desc="LoRA steps", disable=not progress)
    began = time.perf_counter()
    try:
        while step < total_steps:
            rng.shuffle(order)
            for start in range(0, len(order), r.micro_batch):
                idx = order[start:start + r.micro_batch]
                batch = collate([encoded[i] for i in idx], pad)
                if r.resistance:
                    rows = torch.zeros(len(idx), hf_model.config.hidden_size)
                    for j, i in enumerate(idx):
                        if examples[i].kind == "self_correction":
                            rows[j] = rng.uniform(*r.boost_range) * steer_rows[rng.choice(latents)]
                    hook.add = rows
                out = model(**batch)
                (out.loss / r.grad_accum).backward()
                tokens += int(batch["attention_mask"].sum())
                micro += 1
                if micro % r.grad_accum:
                    continue
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
                history.append({"step": step, "loss": round(out.loss.item(), 4),
                                "lr": sched.get_last_lr()[0], "tokens": tokens,
                                "seconds": round(time.perf_counter() - began, 1)})
                step += 1
                bar.update(1)
                if step >= total_steps:
                    break
    finally:
        if handle is not None:
            handle.remove()
        bar.close()
    model.eval()
    return TrainResult(model, history, tokens, time.perf_counter() - began, r)
