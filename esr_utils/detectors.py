"""Off-topic-detector latents: a contrastive search over matched and deranged prompt–answer pairs.

The paper (§2.3, Table 2) contrasts an answer read after its own prompt (on-topic) with the same
answer read after another prompt (off-topic), and calls the latents that separate the two
"off-topic detectors" (OTDs). Here:

* pairs come from a **derangement**: every answer moves to another prompt, none stays;
* per pair and latent we take the mean, the active share and the max of the SAE activation over
  the **answer tokens only** (the prompt tokens differ by construction);
* per latent, Welch's t-test (off vs on, per-pair means) with a Benjamini–Hochberg correction
  over all latents, and Cohen's d with the pooled standard deviation (positive = more active
  off-topic), as in Table 2;
* the selection rule is fixed before looking: BH-adjusted p ≤ `alpha` and d ≥ `min_d` on the
  *discovery* prompts, the `n` largest d; the same statistics on disjoint *confirmation* prompts
  say whether the detectors generalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from esr_utils.batching import AUTO, auto_batch_size
from esr_utils.generation import tokenize_texts
from esr_utils.judging.answers import load_model_answers
from esr_utils.paper_latents import PAPER_OTDS, PAPER_OTDS_NEGATIVE, PAPER_OTDS_POSITIVE
from esr_utils.prompts import chat_text, conversation_text

__all__ = ["PAPER_OTDS_POSITIVE", "PAPER_OTDS_NEGATIVE", "PAPER_OTDS", "derangement", "welch_t",
           "cohens_d", "benjamini_hochberg", "AnswerStats", "answer_token_stats", "contrast",
           "select_detectors", "DetectorSearch", "search_detectors", "shipped_answers"]



def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of range(n) with no fixed point (rejection sampling, as
    the paper's code does; about e ≈ 2.7 draws on average).

    >>> p = derangement(5, np.random.default_rng(0)); bool((p != np.arange(5)).all())
    True
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    while True:
        perm = rng.permutation(n)
        if (perm != np.arange(n)).all():
            return perm


def welch_t(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch's t (a − b) and its two-sided p per column of [n_a, k] and [n_b, k] samples.

    Columns constant in both samples (e.g. a latent silent everywhere) get t = 0, p = 1.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs ≥ 2 samples per group, got {len(a)} and {len(b)}")
    va, vb = a.var(axis=0, ddof=1) / len(a), b.var(axis=0, ddof=1) / len(b)
    se2 = va + vb
    diff = a.mean(axis=0) - b.mean(axis=0)
    ok = se2 > 0
    t = np.zeros_like(diff)
    t[ok] = diff[ok] / np.sqrt(se2[ok])
    dof = np.ones_like(diff)
    dof[ok] = se2[ok] ** 2 / (va[ok] ** 2 / (len(a) - 1) + vb[ok] ** 2 / (len(b) - 1))
    p = np.ones_like(diff)
    p[ok] = 2 * stats.t.sf(np.abs(t[ok]), dof[ok])
    return t, p


def cohens_d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(mean a − mean b) / pooled SD (ddof=1) per column; 0 where both samples are constant.

    >>> float(cohens_d(np.array([[1.0], [3.0]]), np.array([[0.0], [2.0]]))[0])
    0.7071067811865475
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    pooled = ((na - 1) * a.var(axis=0, ddof=1) + (nb - 1) * b.var(axis=0, ddof=1)) / (na + nb - 2)
    diff = a.mean(axis=0) - b.mean(axis=0)
    d = np.zeros_like(diff)
    ok = pooled > 0
    d[ok] = diff[ok] / np.sqrt(pooled[ok])
    return d


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), in the input order.

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p, float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(ranked, 1.0)
    return out


_READ_TOKENS = 8192  # padded tokens per forward pass of answer_token_stats


@dataclass
class AnswerStats:
    """Per pair and latent, over the answer's tokens: mean, active share, max ([n_pairs, d_sae])."""

    mean: np.ndarray
    freq: np.ndarray
    max: np.ndarray
    n_tokens: np.ndarray  # answer tokens per pair


@torch.no_grad()
def answer_token_stats(model, sae, prompts: Sequence[str], answers: Sequence[str], layer: int,
                       *, batch_size: int | str = 8, progress: bool = True) -> AnswerStats:
    """SAE statistics over each answer's tokens when (prompt i, answer i) is read in the chat
    template by `model` (unsteered), at `layer`. `batch_size="auto"`: from free GPU memory."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
    tok = model.tokenizer
    layer = model.spec.check_layer(layer)
    texts = [conversation_text(tok, p, a) for p, a in zip(prompts, answers)]
    starts = [len(tok(chat_text(tok, p), add_special_tokens=False)["input_ids"]) for p in prompts]
    lengths = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
    if batch_size == AUTO:  # a forward pass over the longest conversation, nothing generated
        batch_size = auto_batch_size(model, max_new_tokens=0,
                                     prompt_tokens=max(s + n for s, n in zip(starts, lengths)))
    # read in order of length, in batches of at most _READ_TOKENS padded tokens: a batch
    # padded to its longest answer wastes up to half its compute when lengths vary widely
    order = sorted(range(len(texts)), key=lambda i: starts[i] + lengths[i])
    batches, current = [], []
    for i in order:
        if current and (len(current) == batch_size
                        or (len(current) + 1) * (starts[i] + lengths[i]) > _READ_TOKENS):
            batches.append(current)
            current = []
        current.append(i)
    batches.append(current)
    stats: dict[int, tuple] = {}
    for rows in tqdm(batches, desc="reading answers", disable=not progress):
        batch = tokenize_texts(tok, [texts[i] for i in rows])
        hidden = model.read_residuals(batch, [layer])[layer]
        width = batch["input_ids"].shape[1]
        for row, i in enumerate(rows):
            pad = width - int(batch["attention_mask"][row].sum())
            lo = pad + starts[i]
            h = hidden[row, lo:min(lo + lengths[i], width)]
            if len(h) == 0:
                raise ValueError(f"answer {i} has no tokens: {answers[i]!r}")
            acts = sae.encode(h.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
            stats[i] = (acts.mean(0), (acts > 0).float().mean(0), acts.amax(0), len(h))
    mean, freq, top, n_tokens = zip(*(stats[i] for i in range(len(texts))))
    return AnswerStats(mean=torch.stack(mean).numpy(), freq=torch.stack(freq).numpy(),
                       max=torch.stack(top).numpy(), n_tokens=np.asarray(n_tokens))


def contrast(off: AnswerStats, on: AnswerStats) -> dict[str, np.ndarray]:
    """Table 2's columns per latent: mean off/on, active share off/on, Welch p (raw and BH),
    Cohen's d (positive: more active off-topic), all over per-pair mean activations."""
    t, p = welch_t(off.mean, on.mean)
    return {"mean_off": off.mean.mean(0), "mean_on": on.mean.mean(0),
            "freq_off": off.freq.mean(0), "freq_on": on.freq.mean(0),
            "max_off": off.max.mean(0), "max_on": on.max.mean(0),
            "t": t, "p": p, "p_adj": benjamini_hochberg(p), "d": cohens_d(off.mean, on.mean)}


def select_detectors(table: dict[str, np.ndarray], n: int, *, alpha: float = 0.05,
                     min_d: float = 0.5) -> list[int]:
    """The rule fixed in advance: BH-adjusted p ≤ alpha and d ≥ min_d, the `n` largest d.

    May return fewer than `n` (then fewer latents passed); never pads with weaker ones.
    `alpha` = 1 switches the significance gate off.
    """
    if n < 1:
        raise ValueError(f"N_DETECTORS must be ≥ 1, got {n}")
    passing = np.flatnonzero((table["p_adj"] <= alpha) & (table["d"] >= min_d))
    ranked = passing[np.argsort(-table["d"][passing], kind="stable")]
    return [int(k) for k in ranked[:n]]


@dataclass
class DetectorSearch:
    """A search's result: the prompt split, both halves' contrast tables, the chosen latents."""

    discovery_prompts: list[str]
    confirmation_prompts: list[str]
    discovery: dict[str, np.ndarray]
    confirmation: dict[str, np.ndarray]
    detectors: list[int]
    # every pair read (both halves, on- and off-topic): each latent's frequency and size
    reference: AnswerStats

    def confirmed(self, alpha: float = 0.05) -> list[int]:
        """Detectors that are also more active off-topic on the confirmation prompts: d > 0 and
        BH-adjusted p ≤ alpha there (the correction over all latents again)."""
        c = self.confirmation
        return [k for k in self.detectors if c["d"][k] > 0 and c["p_adj"][k] <= alpha]

    def rows(self, latents: Sequence[int] | None = None) -> list[dict]:
        """One Table-2-like row per latent (default: the detectors), both halves' statistics."""
        rows = []
        for k in self.detectors if latents is None else latents:
            a, c = self.discovery, self.confirmation
            rows.append({"latent": int(k), "mean off": a["mean_off"][k],
                         "mean on": a["mean_on"][k], "p (BH)": a["p_adj"][k], "d": a["d"][k],
                         "confirm d": c["d"][k], "confirm p (BH)": c["p_adj"][k]})
        return rows


def shipped_answers(n: int | None = None) -> tuple[list[str], list[str]]:
    """The base model's own unsteered answers to the project's training prompts (disjoint from
    the 38 evaluation prompts), as shipped in `data/organism/dataset.json`: (prompts, answers),
    the first `n` by prompt id."""
    records = load_model_answers("all")[:n]
    return [r["prompt"] for r in records], [r["response"] for r in records]


def _pairs(prompts, answers, rng):
    perm = derangement(len(prompts), rng)
    return list(prompts), list(answers), list(prompts), [answers[j] for j in perm]


def search_detectors(model, sae, prompts: Sequence[str], answers: Sequence[str], *, n: int,
                     layer: int, seed: int = 0, discovery_fraction: float = 0.5,
                     alpha: float = 0.05, min_d: float = 0.5, batch_size: int | str = 8,
                     progress: bool = True) -> DetectorSearch:
    """Split the prompts (seeded) into discovery and confirmation halves, contrast deranged
    with matched pairs within each half, and select detectors on the discovery half only."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(prompts))
    cut = int(round(discovery_fraction * len(prompts)))
    if cut < 2 or len(prompts) - cut < 2:
        raise ValueError(f"{len(prompts)} prompts leave fewer than 2 per half at "
                         f"discovery_fraction={discovery_fraction}: give more prompts")
    tables, parts = [], []
    for half in (order[:cut], order[cut:]):
        p_on, a_on, p_off, a_off = _pairs([prompts[i] for i in half],
                                          [answers[i] for i in half], rng)
        on = answer_token_stats(model, sae, p_on, a_on, layer, batch_size=batch_size,
                                progress=progress)
        off = answer_token_stats(model, sae, p_off, a_off, layer, batch_size=batch_size,
                                 progress=progress)
        tables.append(contrast(off, on))
        parts += [on, off]
    reference = AnswerStats(*(np.concatenate([getattr(s, f) for s in parts])
                              for f in ("mean", "freq", "max", "n_tokens")))
    return DetectorSearch(
        discovery_prompts=[prompts[i] for i in order[:cut]],
        confirmation_prompts=[prompts[i] for i in order[cut:]],
        discovery=tables[0], confirmation=tables[1],
        detectors=select_detectors(tables[0], n, alpha=alpha, min_d=min_d), reference=reference)
