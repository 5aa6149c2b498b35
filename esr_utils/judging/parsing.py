"""Turning an LLM judge's free text into a `Verdict`, never raising."""

from __future__ import annotations

import contextlib
import json
import math
import re

from esr_utils.judging.types import Attempt, Verdict

__all__ = ["parse_verdict", "ParseError"]

_TAGGED = re.compile(r"<json>(.*?)</json>", re.DOTALL | re.IGNORECASE)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_TEXT_KEYS = ("attempt_text", "text", "attempt")


class ParseError(ValueError):
    """The judge's text holds no usable grade."""


def _loads(text: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        # models sometimes leave a trailing comma; nothing else is repaired
        return json.loads(_TRAILING_COMMA.sub(r"\1", text))


def _balanced(text: str, start: int) -> str | None:
    """The `{...}` block opening at `start`, matched with JSON string rules; None if unclosed."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def _objects_in(text: str, limit: int = 200) -> list:
    """Every JSON object that opens at one of the first `limit` `{` in `text`, in order."""
    found = []
    for match in list(re.finditer(r"\{", text))[:limit]:
        block = _balanced(text, match.start())
        if block is None:
            continue
        try:
            found.append(_loads(block))
        except (json.JSONDecodeError, RecursionError):
            continue
    return found


def _candidates(raw: str):
    # most explicit first; within each kind the last block wins, since the feedback comes first
    for pattern in (_TAGGED, _FENCED):
        for block in reversed(pattern.findall(raw)):
            try:
                yield _loads(block.strip())
            except (json.JSONDecodeError, RecursionError):
                yield from reversed(_objects_in(block))
    with contextlib.suppress(json.JSONDecodeError, RecursionError):
        yield _loads(raw.strip())
    yield from reversed(_objects_in(raw))


def _score(value) -> float:
    if isinstance(value, bool):
        raise ParseError(f"score must be a number, got {value!r}")
    if isinstance(value, str):
        value = value.strip().removesuffix("/100").strip()
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ParseError(f"score must be a number, got {value!r}") from None
    if not math.isfinite(score) or not 0 <= score <= 100:
        raise ParseError(f"score must lie in [0, 100], got {value!r}")
    return score


def _attempts(obj) -> tuple[Attempt, ...]:
    if not isinstance(obj, dict) or "attempts" not in obj:
        raise ParseError("no object with an 'attempts' key")
    items = obj["attempts"]
    if not isinstance(items, list):
        raise ParseError(f"'attempts' must be a list, got {type(items).__name__}")
    attempts = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "score" not in item:
            raise ParseError(f"attempt {i} has no score: {item!r}"[:200])
        text = next((item[k] for k in _TEXT_KEYS if k in item), "")
        text = str(text) if text is not None else ""
        attempts.append(Attempt(text=text, score=_score(item["score"])))
    return tuple(attempts)


def parse_verdict(raw: str | None, judge: str = "") -> Verdict:
    """Read a grade from tagged JSON, fenced JSON, bare JSON or JSON inside prose.

    Anything else gives a `Verdict` whose `error` says why, with `raw` kept for inspection.
    """
    if not isinstance(raw, str) or not raw.strip():
        return Verdict(error="empty judge output", raw=raw, judge=judge)
    first_problem = None
    for obj in _candidates(raw):
        try:
            return Verdict(attempts=_attempts(obj), raw=raw, judge=judge)
        except ParseError as exc:
            first_problem = first_problem or str(exc)
    return Verdict(error=f"unparseable judge output: {first_problem or 'no JSON found'}",
                   raw=raw, judge=judge)
