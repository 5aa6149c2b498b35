"""What a judge reads and returns, and the protocol every judge follows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Attempt", "JudgeInput", "Verdict", "Judge"]


@dataclass(frozen=True)
class JudgeInput:
    """One response to grade.

    Args:
        prompt: the user turn exactly as the model saw it (meta-prompt included).
        response: the generated text.
        label: the steered latent's label; empty for unsteered trials.
    """

    prompt: str
    response: str
    label: str = ""

    def digest(self) -> str:
        blob = json.dumps([self.prompt, self.response, self.label or ""]).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One attempt at answering: its text and a 0–100 score."""

    text: str
    score: float

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score}


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one response.

    Exactly one of these holds: `error` is set (the judge failed; `raw` keeps its text), or
    `attempts` lists one or more attempts, or `attempts` is empty (the response makes no attempt,
    e.g. it only asks a clarifying question).
    """

    attempts: tuple[Attempt, ...] = ()
    error: str | None = None
    raw: str | None = None
    judge: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def scores(self) -> list[float]:
        return [a.score for a in self.attempts]

    def to_record(self) -> dict:
        """The fields added to a trial record: `attempts`, `judge_error`, `judge`, `judge_raw`."""
        return {
            "attempts": [a.to_dict() for a in self.attempts] if self.ok else None,
            "judge_error": self.error,
            "judge": self.judge,
            "judge_raw": self.raw if self.error else None,
        }

    @classmethod
    def from_record(cls, record: dict) -> Verdict:
        attempts = tuple(Attempt(a["text"], float(a["score"]))
                         for a in record.get("attempts") or [])
        return cls(attempts=attempts, error=record.get("judge_error"),
                   raw=record.get("judge_raw"), judge=record.get("judge", ""))


@runtime_checkable
class Judge(Protocol):
    """Anything that grades responses; must never raise for a bad response or a failed call."""

    name: str

    def judge(self, item: JudgeInput) -> Verdict: ...

    def judge_many(self, items: Sequence[JudgeInput], *, progress: bool = False) -> list[Verdict]:
        ...
