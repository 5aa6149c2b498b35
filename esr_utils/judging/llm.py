"""The paper's LLM judge: one chat call per response, cached, parsed, never raising."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from tqdm.auto import tqdm

from esr_utils.judging.backends import Backend, BackendError
from esr_utils.judging.cache import JudgeCache
from esr_utils.judging.parsing import parse_verdict
from esr_utils.judging.prompt import PROMPT_VERSION, SYSTEM_PROMPT, build_user_message
from esr_utils.judging.types import JudgeInput, Verdict

__all__ = ["LLMJudge"]


class LLMJudge:
    """Grades with a chat model through `backend`, reusing `cache` hits.

    Args:
        backend: an `AnthropicBackend` or `OpenAIBackend`.
        cache: a `JudgeCache`, or None to disable caching.
        max_concurrent: parallel calls in `judge_many` (the backend's rate limit still applies).
    """

    def __init__(self, backend: Backend, *, cache: JudgeCache | None = None,
                 max_concurrent: int = 8):
        self.backend = backend
        self.name = backend.judge_id
        self.cache = cache
        self.max_concurrent = max(1, int(max_concurrent))

    def judge(self, item: JudgeInput) -> Verdict:
        raw = self.cache.get(item, PROMPT_VERSION) if self.cache is not None else None
        if raw is None:
            try:
                raw = self.backend.complete(SYSTEM_PROMPT, build_user_message(item))
            except BackendError as exc:
                return Verdict(error=f"judge call failed: {exc}", raw=exc.raw, judge=self.name)
            except Exception as exc:  # a judge must never stop the experiment loop
                return Verdict(error=f"judge call failed: {exc!r}", judge=self.name)
            if self.cache is not None:
                self.cache.put(item, raw, PROMPT_VERSION)
        return parse_verdict(raw, judge=self.name)

    def judge_many(self, items: Sequence[JudgeInput], *, progress: bool = False) -> list[Verdict]:
        """Grade all items, `max_concurrent` at a time; results in input order."""
        bar = tqdm(total=len(items), desc=f"judging ({self.name})", unit="resp",
                   disable=not progress)

        def one(item):
            verdict = self.judge(item)
            bar.update(1)
            return verdict

        with ThreadPoolExecutor(max_workers=self.max_concurrent) as pool:
            verdicts = list(pool.map(one, items))
        bar.close()
        return verdicts
