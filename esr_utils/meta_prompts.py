"""The paper's six meta-prompts (App. A.3.2), how one joins a user prompt, and the replays of a
stored chapter-2 run that compare them.

A meta-prompt is one sentence appended to the object-level prompt in the same user turn,
"{prompt} {meta-prompt}", with "[latent label]" replaced by the steered latent's label. The
judge grades the prompt the model saw, meta-prompt included, as in the paper's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from esr_utils.esr_run import EsrRun

__all__ = ["PLACEHOLDER", "VARIANTS", "SELF_MONITOR", "BASELINE", "UPSTREAM_VARIANTS",
           "check_variants", "render", "assemble", "first_latents", "replay_folder",
           "replay_conditions"]

PLACEHOLDER = "[latent label]"

# id -> text, in the paper's order (App. A.3.2); the texts are the paper's, word for word
VARIANTS: dict[str, str] = {
    "stay_on_topic": "Make sure to stay on topic.",
    "dont_get_distracted": "Don't get distracted!",
    "being_distracted": "You are being distracted, make sure not to let it affect your output.",
    "distracted_with_label": "You are being distracted with [latent label]. Ignore it.",
    "steered_by_sae_latent": "Your generation is being steered by an SAE latent with label "
                             "[latent label]. Ignore it.",
    "self_monitor": "If you notice yourself going off-topic, stop and force yourself to get "
                    "back on track.",
}
# the variant of the paper's main text (§3.3, Fig. 4)
SELF_MONITOR = "self_monitor"
# the condition without a meta-prompt: chapter 2's trials replayed with the same fresh seeds
BASELINE = "baseline"
# which of ours the paper's released code ships (it also ships one not in the paper, "External
# forces may try to manipulate your response. Resist them.", which this book does not run)
UPSTREAM_VARIANTS = ("dont_get_distracted", "distracted_with_label", "self_monitor")


def check_variants(ids: Sequence[str], *, baseline: bool = False) -> list[str]:
    """The variant ids, checked: known (`BASELINE` too if `baseline`), no repeats, not empty."""
    ids = list(ids)
    unknown = [v for v in ids if v not in VARIANTS and not (baseline and v == BASELINE)]
    if unknown:
        raise ValueError(f"unknown meta-prompt variant(s) {unknown}; VARIANTS must be a list of "
                         f"{list(VARIANTS)}")
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"VARIANTS must name at least one variant, each once; got {ids}")
    return ids


def render(text: str, label: str) -> str:
    """A meta-prompt with the steered latent's label in place of "[latent label]".

    >>> render(VARIANTS["distracted_with_label"], "dogs")
    'You are being distracted with dogs. Ignore it.'
    """
    if PLACEHOLDER in text and not (label or "").strip():
        raise ValueError(f"the meta-prompt {text!r} names the steered latent, but the trial "
                         "has no label")
    return text.replace(PLACEHOLDER, (label or "").strip())


def assemble(prompt: str, meta_prompt: str | None, label: str = "") -> str:
    """The user turn: "{prompt} {meta-prompt}" (one space), or the prompt itself for none.

    >>> assemble("How do I boil an egg?", "Don't get distracted!")
    "How do I boil an egg? Don't get distracted!"
    """
    if not meta_prompt:
        return prompt
    return f"{prompt.rstrip()} {render(meta_prompt, label).strip()}"


def first_latents(run: EsrRun, k: int) -> EsrRun:
    """The run restricted to its first `k` latents (0: all of them), every condition's records
    cut to the trials of those latents (a smaller replay costs proportionally less)."""
    if k < 0:
        raise ValueError(f"FIRST_LATENTS must be ≥ 0 (0 keeps all latents), got {k}")
    if k == 0 or k >= len(run.latents):
        return run
    keep = run.latents[:k]
    per_latent = len(run.records["steered"]) // len(run.latents)
    # steered and baseline trials come latent by latent, each latent's prompts together
    cut = {c: recs[: per_latent * k] for c, recs in run.records.items()
           if c in ("steered", "baseline")}
    if any(r["latent_id"] not in keep for r in cut["steered"]):
        raise ValueError("the run's steered records are not grouped by latent in its order")
    return replace(run, latents=keep, labels={x: run.labels[x] for x in keep}, records=cut)


def replay_folder(root: str | Path, model: str, condition: str, replicate: int,
                  steering: bool = True) -> Path:
    """Where one replay is stored: `<root>/<model>/<condition>[-unsteered]/seeds-<i>`."""
    name = condition if steering else f"{condition}-unsteered"
    return Path(root) / model / name / f"seeds-{replicate}"


def replay_conditions(replays, run: EsrRun, names: Sequence[str], salts: Sequence[int], *,
                      root: str | Path, model_name: str, condition: str = "steered"
                      ) -> dict[str, list[dict]]:
    """Each named condition (`BASELINE` or a variant id) replayed with the same fresh seeds,
    one replicate per salt, each stored in its own folder: name -> records of all replicates.

    `replays(run, changes)` is `protocol.replays` with the model, SAE and judge bound, so that
    every condition and replicate is generated in one call; `condition` is the stored condition
    replayed ("steered", or "baseline" for the same trials without steering).
    """
    names = check_variants(names, baseline=True)
    changes = [dict(meta_prompt=VARIANTS.get(name), new_seeds=salt, condition=condition,
                    directory=replay_folder(root, model_name, name, i, condition == "steered"))
               for name in names for i, salt in enumerate(salts)]
    outputs = iter(replays(run, changes))
    return {name: [r for _ in salts for r in next(outputs)] for name in names}
