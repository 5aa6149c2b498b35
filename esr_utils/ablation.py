"""Zero-ablating latents during steered generation: matched random controls, the replay, and
condition-versus-baseline rates (the paper's §3.4, Fig. 5, App. A.3.3, Fig. 19).

**Layer.** The ablation acts where the steering acts: `generation` applies both in one
intervention at the steering layer. The paper's code does the same for Llama-3.3-70B: it steers
and zero-ablates at layer 33, encoding that residual with the Goodfire SAE trained on layer 50.
`ablation_replays` takes the layer explicitly and refuses any other than the run's steering layer,
rather than silently ablating elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from esr_utils.esr_run import EsrRun
from esr_utils.metrics import Rate, rate_difference, summarize, wilson_interval
from esr_utils.protocol import replays
from esr_utils.recovery import recovery_rates

__all__ = ["PAPER_70B_ABLATION", "activity_profile", "matched_random_sets", "match_tolerance",
           "check_ablation_layer", "ablation_replays", "ablation_replay", "condition_rows",
           "recovery_rows", "printable"]

# the paper code's 70B setting, stated as data: steering and ablation layer, SAE read-out layer
PAPER_70B_ABLATION = {"model": "llama-3.3-70b-instruct", "ablation_layer": 33, "sae_layer": 50}


def activity_profile(freq: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per latent, from per-text [n, d_sae] active shares and means: (activation frequency,
    mean magnitude when active), the two quantities the paper's random control matches on."""
    f = np.asarray(freq, float).mean(0)
    total = np.asarray(mean, float).mean(0)
    magnitude = np.divide(total, f, out=np.zeros_like(total), where=f > 0)
    return f, magnitude


def _log_gap(a, b):
    return abs(np.log(a) - np.log(b))


def matched_random_sets(targets: Sequence[int], freq: np.ndarray, magnitude: np.ndarray, *,
                        n_sets: int, tolerance: float, seed: int = 0,
                        exclude: Sequence[int] = ()) -> list[list[int]]:
    """`n_sets` random latent sets, each matching `targets` one to one: a latent whose
    activation frequency and mean magnitude when active are both within a factor `tolerance`
    of its target's, drawn uniformly among those, never a target, an excluded latent, or a
    latent already used in the same set. Fails naming the fix when a target has no partner."""
    if tolerance <= 1:
        raise ValueError(f"the match tolerance is a factor > 1, got {tolerance}")
    freq, magnitude = np.asarray(freq, float), np.asarray(magnitude, float)
    banned = {int(k) for k in targets} | {int(k) for k in exclude}
    live = np.flatnonzero((freq > 0) & (magnitude > 0))
    live = np.array([k for k in live if int(k) not in banned], dtype=int)
    rng = np.random.default_rng(seed)
    bound = np.log(tolerance)
    sets = []
    for _ in range(n_sets):
        used: set[int] = set()
        chosen = []
        for k in targets:
            if not (freq[k] > 0 and magnitude[k] > 0):
                raise ValueError(f"latent {k} never fires on the reference texts: it cannot be "
                                 "matched on frequency and magnitude")
            ok = [c for c in live if c not in used
                  and _log_gap(freq[c], freq[k]) <= bound
                  and _log_gap(magnitude[c], magnitude[k]) <= bound]
            if not ok:
                raise ValueError(f"no latent within a factor {tolerance} of latent {k}'s "
                                 f"frequency {freq[k]:.3g} and magnitude {magnitude[k]:.3g}: "
                                 "raise MATCH_TOLERANCE or use fewer random sets")
            pick = int(rng.choice(ok))
            used.add(pick)
            chosen.append(pick)
        sets.append(chosen)
    return sets


def match_tolerance(targets: Sequence[int], sets: Sequence[Sequence[int]], freq: np.ndarray,
                    magnitude: np.ndarray) -> dict[str, float]:
    """The worst factor between a target and its partner, over all sets: frequency, magnitude."""
    worst_f = max(_log_gap(freq[c], freq[k]) for s in sets for k, c in zip(targets, s))
    worst_m = max(_log_gap(magnitude[c], magnitude[k]) for s in sets for k, c in zip(targets, s))
    return {"frequency": float(np.exp(worst_f)), "magnitude": float(np.exp(worst_m))}


def check_ablation_layer(run: EsrRun, layer: int | None) -> int:
    """The ablation layer to use: `layer`, or the run's steering layer when None. Any other
    layer than the steering layer is refused: generation applies both in one intervention."""
    if layer is None:
        return run.layer
    if int(layer) != run.layer:
        raise NotImplementedError(
            f"ABLATION_LAYER={layer} differs from {run.model}'s steering layer {run.layer}; "
            "esr_utils.generation applies steering and ablation at one layer (as the paper's "
            f"code does): set ABLATION_LAYER to {run.layer} or null")
    return int(layer)


def ablation_replays(run: EsrRun, sets: Sequence[tuple[str | Path, Sequence[int]]], *, model,
                     sae, judge, ablation_layer: int | None = None,
                     new_seeds: int | None = None, compute: str = "allow",
                     progress: bool = True) -> list[list[dict]]:
    """Chapter 2's steered trials again, once per `(directory, latents)` in `sets`, with those
    latents zero-ablated at `ablation_layer`; all generated together (fuller batches).

    The empty set with `new_seeds=None` reproduces the stored trials exactly (the baseline);
    with `new_seeds` every condition shares the same fresh seeds.
    """
    check_ablation_layer(run, ablation_layer)
    if model.spec.steering_layer != run.layer:
        raise ValueError(f"{model.spec.name} steers at layer {model.spec.steering_layer}, the "
                         f"run at {run.layer}: replay the run with its own model")
    changes = [dict(directory=directory, ablate=[int(k) for k in latents], new_seeds=new_seeds)
               for directory, latents in sets]
    return replays(run, changes, model=model, sae=sae, judge=judge, compute=compute,
                   progress=progress)


def ablation_replay(run: EsrRun, latents: Sequence[int], *, directory: str | Path,
                    **kwargs) -> list[dict]:
    """`ablation_replays` of one set."""
    return ablation_replays(run, [(directory, latents)], **kwargs)[0]


def _rate_columns(label: str, r: Rate, ref: Rate | None) -> dict:
    """`label %` with its Wilson interval, and its difference from `ref` with its interval
    (percentage points); `ref=None` marks the reference row itself, whose difference is "–"
    (an interval for a condition against itself would treat one sample as two)."""
    lo, hi = wilson_interval(r.k, r.n)
    columns = {f"{label} %": 100 * r.p, f"{label} CI": (100 * lo, 100 * hi)}
    if ref is None:
        return {**columns, f"{label} Δ": "–", f"{label} Δ CI": "–"}
    d, dlo, dhi = rate_difference(ref, r)
    return {**columns, f"{label} Δ": 100 * d, f"{label} Δ CI": (100 * dlo, 100 * dhi)}


def condition_rows(records: Mapping[str, Sequence[dict]], baseline: str) -> list[dict]:
    """Per condition: n, mean first score, multi-attempt and ESR rates with Wilson 95%
    intervals, and each rate's difference from `baseline` with its 95% interval (points)."""
    ref = summarize(records[baseline])
    rows = []
    for name, recs in records.items():
        s = summarize(recs)
        row = {"condition": name, "n": s["n_valid"],
               "first score": s["mean_first_score"].mean,
               "first score CI": s["mean_first_score"].ci}
        for key, label in (("multi_attempt_rate", "multi-attempt"), ("esr_rate", "ESR")):
            row.update(_rate_columns(label, s[key], None if name == baseline else ref[key]))
        rows.append(row)
    return rows


def recovery_rows(kinds: Mapping[str, Sequence[str]], baseline: str) -> list[dict]:
    """Per condition: explicit and implicit recovery (`recovery.recovery_kinds` of its answers)
    among the answers long enough to classify, with intervals and differences from `baseline`."""
    ref = recovery_rates(kinds[baseline])
    rows = []
    for name, found in kinds.items():
        rates = recovery_rates(found)
        row = {"condition": name, "n classified": rates["recovery"].n}
        for label in ("explicit recovery", "implicit recovery"):
            row.update(_rate_columns(label, rates[label], None if name == baseline else ref[label]))
        rows.append(row)
    return rows


def printable(rows: Sequence[dict]) -> list[dict]:
    """`condition_rows` for a table: numbers to one decimal, intervals as "[lo, hi]".

    >>> printable([{"ESR %": 2.04, "ESR CI": (0.51, 7.95)}])
    [{'ESR %': '2.0', 'ESR CI': '[0.5, 8.0]'}]
    """
    def fmt(v):
        if isinstance(v, tuple):
            return f"[{v[0]:.1f}, {v[1]:.1f}]"
        return f"{v:.1f}" if isinstance(v, float) else v
    return [{k: fmt(v) for k, v in row.items()} for row in rows]
