"""The paper's LLM judge: one chat call per response, cached, parsed, never raising."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from esr_utils.judging.cache import JudgeCache
from esr_utils.judging.clients import ChatClient, ClientError, count
from esr_utils.judging.parsing import parse_verdict
from esr_utils.judging.prompt import PROMPT_VERSION, SYSTEM_PROMPT, build_user_message
from esr_utils.judging.types import JudgeInput, Verdict

__all__ = ["LLMJudge", "concurrent_map"]


class LLMJudge:
    """Grades with a chat model through `client`, reusing `cache` hits.

    Every item gets a `Verdict`: a failed call or an unparsable grade is a recorded error (counted
    in `clients.call_counts()`), never an exception and never a missing verdict.

    Args:
        client: an `AnthropicClient` or `OpenAIClient` (from `judging.clients`).
        cache: a `JudgeCache`, or None to disable caching.
        max_concurrent: parallel calls in `judge_many` (the client's rate limit still applies).
    """

    def __init__(self, client: ChatClient, *, cache: JudgeCache | None = None,
                 max_concurrent: int = 8):
        self.client = client
        self.backend = client  # the attribute's name before the rename
        self.name = client.judge_id
        self.cache = cache
        self.max_concurrent = max(1, int(max_concurrent))

    def judge(self, item: JudgeInput) -> Verdict:
        raw = self.cache.get(item, PROMPT_VERSION) if self.cache is not None else None
        if raw is not None:
            count(self.name, cache_hits=1)
        else:
            try:
                raw = self.client.complete(SYSTEM_PROMPT, build_user_message(item))
            except ClientError as exc:
                return Verdict(error=f"judge call failed: {exc}", raw=exc.raw, judge=self.name)
            except Exception as exc:  # a judge must never stop the experiment loop
                count(self.name, failed=1, unexpected=1)
                return Verdict(error=f"judge call failed: {exc!r}", judge=self.name)
            if self.cache is not None:
                self.cache.put(item, raw, PROMPT_VERSION)
        return self.verdict_from_raw(raw)

    def verdict_from_raw(self, raw: str) -> Verdict:
        """The parsed grade; an unparsable one is a recorded error."""
        try:
            verdict = parse_verdict(raw, judge=self.name)
        except Exception as exc:  # a parser bug on a strange reply is still one recorded error
            verdict = Verdict(error=f"grade could not be parsed: {exc!r}", raw=raw, judge=self.name)
        if not verdict.ok:
            count(self.name, unparsable=1)
        return verdict

    def judge_many(self, items: Sequence[JudgeInput], *, progress: bool = False,
                   batch_dir: str | None = None, **batch_kwargs) -> list[Verdict]:
        """Grade all items, `max_concurrent` at a time; results in input order.

        With `batch_dir` (a results folder) they go through the provider's batch API instead,
        resumable from that folder after a crash (`judging.batches.judge_in_batches`).
        """
        if batch_dir is not None:
            from esr_utils.judging.batches import judge_in_batches

            return judge_in_batches(self, items, batch_dir, progress=progress, **batch_kwargs)
        return concurrent_map(self.judge, items, workers=self.max_concurrent,
                              desc=f"judging ({self.name})", progress=progress)


def concurrent_map(fn, items: Sequence, *, workers: int, desc: str, progress: bool) -> list:
    """`fn` over `items` on `workers` threads (calls to a rate-limited API), results in input
    order, with a progress bar counting responses."""
    bar = tqdm(total=len(items), desc=desc, unit="resp", disable=not progress)

    def one(item):
        result = fn(item)
        bar.update(1)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, items))
    bar.close()
    return results
