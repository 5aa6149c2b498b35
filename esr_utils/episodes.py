"""Per-token detector activations around self-corrections (the paper's §3.6, Fig. 7; App. A.4,
Figs 20–21).

An *episode* is one steered answer read back teacher-forced, with its steering applied, and the
summed activation of a latent set on each of its tokens. Its **restart** is the token where the
judge's second attempt begins (the offline judge finds it with its restart detector); the
off-topic region is everything before it, the on-topic region everything from it on. Episodes
without a second attempt are the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from esr_utils.metrics import Mean, mean_ci
from esr_utils.prompts import chat_text, conversation_text
from esr_utils.steering import Steering, plan_interventions

__all__ = ["Episode", "restart_char", "detector_episodes", "aligned", "region_means", "ema"]


@dataclass
class Episode:
    """One answer's per-token summed latent activation, and where its restart is (or None)."""

    record: dict
    tokens: list[str]
    activation: np.ndarray  # [n_answer_tokens]
    restart: int | None  # token index of the second attempt's start


def restart_char(record: dict) -> int | None:
    """Character offset in the response where the judge's second attempt starts, or None (one
    attempt, or a second attempt whose text is not found verbatim in the response)."""
    attempts = record.get("attempts") or []
    if len(attempts) < 2:
        return None
    head = attempts[1]["text"].strip()[:40]
    at = record["response"].find(head) if head else -1
    return at if at >= 0 else None


@torch.no_grad()
def detector_episodes(model, sae, records: Sequence[dict], latents: Sequence[int], *,
                      steered: bool = True) -> list[Episode]:
    """Each record's answer read teacher-forced at the SAE's layer, its stored steering (and
    ablation) applied there when `steered`; the sum of `latents`' activations per answer token.

    Steering acts at the steering layer; reading it back at another layer would need the
    intervention inside the forward pass, so a model whose SAE layer differs is refused.
    """
    spec = model.spec
    if steered and spec.sae.layer != spec.steering_layer:
        raise NotImplementedError(f"{spec.name} steers at layer {spec.steering_layer} but its SAE "
                                  f"reads layer {spec.sae.layer}: steered read-back is "
                                  "implemented only where they coincide (pass steered=False)")
    tok, ids_ = model.tokenizer, [int(k) for k in latents]
    out = []
    for r in records:
        text = conversation_text(tok, r["prompt"], r["response"])
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        start = len(tok(chat_text(tok, r["prompt"]), add_special_tokens=False)["input_ids"])
        answer_ids = tok(r["response"], add_special_tokens=False)["input_ids"]
        hidden = model.read_residuals(ids, [spec.sae.layer])[spec.sae.layer]
        h = hidden[:, start:start + len(answer_ids)].to(sae.W_enc.device, sae.W_enc.dtype)
        if steered and (r.get("latent_id") is not None or r.get("ablate")):
            plan = plan_interventions([Steering(r.get("latent_id"), r.get("boost") or 0.0,
                                                tuple(r.get("ablate") or ()))], sae)
            h = plan.to(dtype=h.dtype).apply(h)
        acts = sae.encode(h[0])[:, ids_].sum(-1).float().cpu().numpy()
        char = restart_char(r)
        restart = None if char is None else len(tok(r["response"][:char],
                                                    add_special_tokens=False)["input_ids"])
        out.append(Episode(r, tok.convert_ids_to_tokens(answer_ids[:len(acts)]), acts, restart))
    return out


def aligned(episodes: Sequence[Episode], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Episodes with a restart, aligned at it: (offsets −window..window−1, [n, 2·window]
    activations, NaN where an episode has no token)."""
    offsets = np.arange(-window, window)
    rows = []
    for e in episodes:
        if e.restart is None:
            continue
        row = np.full(2 * window, np.nan)
        for j, off in enumerate(offsets):
            t = e.restart + off
            if 0 <= t < len(e.activation):
                row[j] = e.activation[t]
        rows.append(row)
    return offsets, np.array(rows).reshape(len(rows), 2 * window)


def region_means(episodes: Sequence[Episode]) -> dict[str, Mean]:
    """Fig. 21's bars: per-episode mean activation before the restart (off-topic), from it on
    (on-topic), and over whole answers without a restart (baseline), each with a 95% interval."""
    off, on, base = [], [], []
    for e in episodes:
        if e.restart is None:
            base.append(float(e.activation.mean()) if len(e.activation) else None)
        elif 0 < e.restart < len(e.activation):
            off.append(float(e.activation[:e.restart].mean()))
            on.append(float(e.activation[e.restart:].mean()))
    return {"off-topic (before restart)": mean_ci(off), "after restart": mean_ci(on),
            "no restart (baseline)": mean_ci(base)}


def ema(x: Sequence[float], alpha: float = 0.5) -> np.ndarray:
    """Exponential moving average, s_t = α·x_t + (1 − α)·s_{t−1}, s_0 = x_0 (Fig. 7's smoothing).

    >>> ema([0.0, 2.0, 2.0]).tolist()
    [0.0, 1.0, 1.5]
    """
    x = np.asarray(x, float)
    out = np.empty_like(x)
    for i, v in enumerate(x):
        out[i] = v if i == 0 else alpha * v + (1 - alpha) * out[i - 1]
    return out
