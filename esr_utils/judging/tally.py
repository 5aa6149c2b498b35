"""The process-wide tally of LLM-judge calls per judge, which the run card records: calls, HTTP
requests, retries, and failures by kind."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["count", "call_counts"]

_COUNTS: dict[str, Counter] = {}
_COUNTS_LOCK = threading.Lock()


def count(judge_id: str, **increments: int) -> None:
    """Add to the process-wide tally of `judge_id` (thread-safe)."""
    with _COUNTS_LOCK:
        _COUNTS.setdefault(judge_id, Counter()).update(increments)


def call_counts() -> dict[str, dict[str, int]]:
    """Per judge: calls, requests, retries, ok, failed, and failures by kind, in this process."""
    with _COUNTS_LOCK:
        return {judge: dict(sorted(c.items())) for judge, c in sorted(_COUNTS.items())}
