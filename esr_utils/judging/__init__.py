"""Judging responses into attempts and scores: the paper's LLM judge and an offline judge.

`make_judge("offline")`, `make_judge("anthropic:claude-haiku-4-5-20251001")` or
`make_judge("openai:<model>@<base-url>")` build a judge; every judge has `judge(item)` and
`judge_many(items)` and returns `Verdict`s, never raising for a bad response or a failed call.
"""

from __future__ import annotations

import re

from esr_utils.judging.cache import JudgeCache
from esr_utils.judging.clients import (
    DEFAULT_ANTHROPIC_MODEL,
    AnthropicClient,
    ClientError,
    MissingAPIKey,
    OpenAIClient,
)
from esr_utils.judging.llm import LLMJudge
from esr_utils.judging.offline import OfflineJudge
from esr_utils.judging.parsing import parse_verdict
from esr_utils.judging.segmenting import PAPER_EXAMPLE_PATTERNS, PatternRestarts
from esr_utils.judging.types import Attempt, Judge, JudgeInput, Verdict

__all__ = ["Attempt", "Judge", "JudgeInput", "Verdict", "LLMJudge", "OfflineJudge", "JudgeCache",
           "MissingAPIKey", "ClientError", "parse_verdict", "make_judge", "parse_judge_spec",
           "DEFAULT_ANTHROPIC_MODEL", "strict_offline_judge", "make_backend"]

_OPENAI_SPEC = re.compile(r"^openai:(?P<model>.+?)@(?P<url>https?://\S+)$")


def parse_judge_spec(spec: str) -> dict:
    """Split a judge spec string into its parts.

    >>> parse_judge_spec("openai:qwen/qwen3-32b@https://openrouter.ai/api/v1")["model"]
    'qwen/qwen3-32b'
    """
    spec = (spec or "").strip()
    if spec in ("offline", "offline:strict"):
        return {"kind": spec}
    if spec == "anthropic":
        return {"kind": "anthropic", "model": DEFAULT_ANTHROPIC_MODEL}
    if spec.startswith("anthropic:") and len(spec) > len("anthropic:"):
        return {"kind": "anthropic", "model": spec.split(":", 1)[1]}
    match = _OPENAI_SPEC.match(spec)
    if match:
        return {"kind": "openai", "model": match["model"], "base_url": match["url"]}
    raise ValueError(f"unknown judge {spec!r}; use 'offline', 'anthropic:<model>' or "
                     f"'openai:<model>@<base-url>' (e.g. openai:qwen/qwen3-32b@"
                     f"https://openrouter.ai/api/v1)")


def strict_offline_judge(**kwargs) -> OfflineJudge:
    """A variant of the offline judge for cross-judge demos: it splits only at the paper's five
    example restart phrases, word for word (no learned detector); scoring is the same."""
    return OfflineJudge(detector=PatternRestarts(PAPER_EXAMPLE_PATTERNS), name="offline:strict",
                        **kwargs)


def make_backend(spec: str, **backend_kwargs):
    """The chat backend of an LLM spec ("anthropic:<model>" or "openai:<model>@<url>"), e.g. for
    the concreteness grader; checks the API key now."""
    parts = parse_judge_spec(spec)
    if parts["kind"] == "anthropic":
        return AnthropicClient(parts["model"], **backend_kwargs)
    if parts["kind"] == "openai":
        return OpenAIClient(parts["model"], parts["base_url"], **backend_kwargs)
    raise ValueError(f"{spec!r} is not an LLM spec; use 'anthropic:<model>' or "
                     "'openai:<model>@<base-url>'")


def make_judge(spec, *, cache: JudgeCache | str | None = "default", max_concurrent: int = 8,
               **backend_kwargs) -> Judge:
    """A judge from a spec string, or from a `RunConfig` whose params hold `judge`.

    LLM judges check their API key here, so a missing key fails before any work starts. Their
    grades are cached on disk (`cache="default"`: the user cache; a path; or None for none).
    """
    if hasattr(spec, "params"):
        spec = spec.params.get("judge", "offline")
    parts = parse_judge_spec(spec)
    if parts["kind"] == "offline":
        return OfflineJudge()
    if parts["kind"] == "offline:strict":
        return strict_offline_judge()
    backend = make_backend(spec, **backend_kwargs)
    if cache == "default":
        cache = JudgeCache(judge_id=backend.judge_id)
    elif cache is not None and not isinstance(cache, JudgeCache):
        cache = JudgeCache(cache, judge_id=backend.judge_id)
    return LLMJudge(backend, cache=cache, max_concurrent=max_concurrent)
