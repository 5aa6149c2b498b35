"""The quality an SAE must reach before the book steers with it, defined once.

Measured on held-out contexts (position 0 left out): L0 (active latents per token), the fraction
of variance explained, the share of next-token loss recovered when the SAE's reconstruction is
spliced in (against zero-ablating the residual), and the share of latents that never fire on the
training corpus. The model card, appendix A1 and its checks all read these.
"""

from __future__ import annotations

__all__ = ["QUALITY_TARGETS", "meets_targets", "target_text"]

# metric -> (lowest allowed, highest allowed); None means unbounded on that side
QUALITY_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "l0": (15.0, 120.0),
    "fve": (0.75, None),
    "loss_recovered": (0.85, None),
    "dead_fraction_corpus": (None, 0.15),
}


def meets_targets(metrics: dict[str, float], tolerance: float = 0.0) -> dict[str, bool]:
    """Per target metric present in `metrics`: whether it lies within its bounds (± tolerance).

    >>> meets_targets({"l0": 62.0, "fve": 0.74})
    {'l0': True, 'fve': False}
    """
    out = {}
    for name, (low, high) in QUALITY_TARGETS.items():
        if name in metrics:
            value = metrics[name]
            out[name] = ((low is None or value >= low - tolerance)
                         and (high is None or value <= high + tolerance))
    return out


def target_text(name: str) -> str:
    """The target as the model card and the appendix print it.

    >>> target_text("l0"), target_text("fve"), target_text("dead_fraction_corpus")
    ('15–120', '≥ 0.75', '≤ 15%')
    """
    low, high = QUALITY_TARGETS[name]
    if name.startswith("dead"):
        return f"≤ {high:.0%}"
    if low is not None and high is not None:
        return f"{low:g}–{high:g}"
    return f"≥ {low:g}" if low is not None else f"≤ {high:g}"
