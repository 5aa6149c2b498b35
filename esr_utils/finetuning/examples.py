"""Training prompts, restart families and the two kinds of fine-tuning example (paper §3.5).

A *self-correction* example is an off-topic passage, one restart sentence, then the model's own
on-topic answer; a *normal* example is the model's own answer alone. Every example carries its
provenance (which prompt, which latent and boost made the off-topic passage, which seed, which
restart family), so the dataset card can list exactly what was trained on.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from esr_utils.judging.segmenting import split_sentences
from esr_utils.paths import DATA_DIR

__all__ = [
    "ORGANISM_DATA_DIR",
    "Example",
    "first_sentences",
    "load_restart_families",
    "load_training_prompts",
    "mix_examples",
    "normal_example",
    "restart_sentences",
    "self_correction_example",
    "split_prompts",
    "unrelated_partner",
]

ORGANISM_DATA_DIR = DATA_DIR / "organism"


@dataclass(frozen=True)
class Example:
    """One training example: a user prompt, the assistant text in parts, and its provenance.

    `prefix` (the off-topic passage) is never trained on; `target` (restart + recovery, or the
    whole answer for a normal example) is.
    """

    kind: str  # "self_correction" or "normal"
    prompt_id: int
    prompt: str
    prefix: str
    target: str
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("self_correction", "normal"):
            raise ValueError(f"kind must be 'self_correction' or 'normal', got {self.kind!r}")
        if self.kind == "normal" and self.prefix:
            raise ValueError("a normal example has no off-topic prefix")
        if not self.target.strip():
            raise ValueError(f"example for prompt {self.prompt_id} has an empty target")

    @property
    def response(self) -> str:
        return self.prefix + self.target

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Example:
        return cls(**data)


def load_training_prompts() -> list[str]:
    """The project's training prompts (`data/organism/prompts_train.txt`), id = line index."""
    path = ORGANISM_DATA_DIR / "prompts_train.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def split_prompts(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Prompt ids split into (train, validation), reproducibly; validation selects adapters."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ids = list(range(n))
    random.Random(seed).shuffle(ids)
    n_val = max(1, round(n * val_fraction))
    return sorted(ids[n_val:]), sorted(ids[:n_val])


def load_restart_families() -> dict[str, dict]:
    """Restart families: {name: {"held_out": bool, "sentences": [...]}}."""
    data = json.loads((ORGANISM_DATA_DIR / "restarts.json").read_text())
    return data["families"]


def restart_sentences(held_out: bool) -> list[tuple[str, str]]:
    """(family, sentence) pairs of the training (held_out=False) or held-out families."""
    return [(name, s) for name, fam in load_restart_families().items()
            if fam["held_out"] == held_out for s in fam["sentences"]]


_OPEN_LIST = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*$")


def first_sentences(text: str, n: int, *, min_chars: int = 20) -> str:
    """The text up to the end of its `n`-th sentence (a cut at a sentence boundary).

    Returns "" when the text has fewer than `n` sentences or the cut is shorter than
    `min_chars`: such passages are too short to be an off-topic drift.
    """
    spans = [(s, e) for s, e in split_sentences(text) if not _OPEN_LIST.match(text[s:e])]
    if n < 1 or len(spans) < n:
        return ""
    cut = text[: spans[n - 1][1]].rstrip()
    return cut if len(cut) >= min_chars else ""


def self_correction_example(prompt_id: int, prompt: str, off_topic: str, restart: str,
                            recovery: str, provenance: dict) -> Example:
    """Off-topic passage, then restart sentence + recovery (the trained part)."""
    if not off_topic.strip() or not recovery.strip():
        raise ValueError(f"prompt {prompt_id}: off-topic passage and recovery must be non-empty")
    return Example("self_correction", prompt_id, prompt, off_topic.rstrip() + " ",
                   f"{restart.strip()} {recovery.strip()}", dict(provenance))


def normal_example(prompt_id: int, prompt: str, answer: str, provenance: dict) -> Example:
    return Example("normal", prompt_id, prompt, "", answer.strip(), dict(provenance))


def unrelated_partner(prompt_id: int, candidates: Sequence[int], rng: random.Random) -> int:
    """Another prompt's id, never `prompt_id` itself, whose answer serves as an off-topic drift."""
    others = [c for c in candidates if c != prompt_id]
    if not others:
        raise ValueError(f"no other prompt to pair prompt {prompt_id} with")
    return rng.choice(others)


def mix_examples(self_correction: Sequence[Example], normal: Sequence[Example], fraction: float,
                 total: int, seed: int) -> list[Example]:
    """`total` examples, a `fraction` of them self-correction, shuffled (the paper's mixtures).

    Raises when either pool is too small, instead of quietly shrinking the mixture.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"self-correction fraction must be in [0, 1], got {fraction}")
    n_sc = round(total * fraction)
    n_normal = total - n_sc
    if n_sc > len(self_correction) or n_normal > len(normal):
        raise ValueError(f"mixture of {total} at {fraction:.0%} needs {n_sc} self-correction and "
                         f"{n_normal} normal examples; have {len(self_correction)} and "
                         f"{len(normal)}: build more data or lower the total")
    rng = random.Random(seed)
    chosen = rng.sample(list(self_correction), n_sc) + rng.sample(list(normal), n_normal)
    rng.shuffle(chosen)
    return chosen
