"""Batch judging through Anthropic's Message Batches API or OpenAI's Batch API, resumable.

Thousands of verdicts go out as one batch per `max_per_batch` items instead of one call each.
Before polling, the batch ids and the custom_id -> item mapping are written to
`<state_dir>/judge_batches.json`; a rerun after a crash finds them and polls the same batches
instead of submitting again. Finished replies go into the judge's disk cache, so a rerun after
completion makes no request at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from esr_utils.judging.clients import AnthropicClient, ClientError, count
from esr_utils.judging.prompt import PROMPT_VERSION, SYSTEM_PROMPT, build_user_message
from esr_utils.judging.types import JudgeInput, Verdict

__all__ = ["judge_in_batches", "STATE_FILE"]

STATE_FILE = "judge_batches.json"


def _digest(items: Sequence[JudgeInput], judge_name: str) -> str:
    text = json.dumps([judge_name, PROMPT_VERSION] + [build_user_message(i) for i in items])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _submit(client, requests: dict[str, str]) -> str:
    """Submit {custom_id: user message}; returns the batch id."""
    return client.retrying(lambda: _submit_once(client, requests), "submitting a batch")


def _submit_once(client, requests: dict[str, str]) -> str:
    if isinstance(client, AnthropicClient):
        return client.sdk.messages.batches.create(requests=[
            {"custom_id": cid, "params": client.request_body(SYSTEM_PROMPT, user)}
            for cid, user in requests.items()]).id
    lines = "\n".join(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                                  "body": client.request_body(SYSTEM_PROMPT, user)})
                      for cid, user in requests.items())
    file = client.sdk.files.create(file=("batch.jsonl", io.BytesIO(lines.encode())),
                                   purpose="batch")
    return client.sdk.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                     completion_window="24h").id


def _poll(client, batch_id: str) -> bool:
    """True once the batch has ended (results ready); raises ClientError if it failed, or if
    its status could not be read within the client's retries (a rerun resumes the batch)."""
    return client.retrying(lambda: _poll_once(client, batch_id),
                           f"reading the status of batch {batch_id}")


def _poll_once(client, batch_id: str) -> bool:
    if isinstance(client, AnthropicClient):
        return client.sdk.messages.batches.retrieve(batch_id).processing_status == "ended"
    batch = client.sdk.batches.retrieve(batch_id)
    if batch.status in {"failed", "expired", "cancelled"}:
        raise ClientError(f"batch {batch_id} {batch.status}")
    return batch.status == "completed"


def _results(client, batch_id: str) -> dict[str, str | ClientError]:
    """{custom_id: reply text, or the ClientError that request ended in}."""
    return client.retrying(lambda: _results_once(client, batch_id),
                           f"downloading the results of batch {batch_id}")


def _results_once(client, batch_id: str) -> dict[str, str | ClientError]:
    out: dict[str, str | ClientError] = {}
    if isinstance(client, AnthropicClient):
        for row in client.sdk.messages.batches.results(batch_id):
            if row.result.type == "succeeded":
                out[row.custom_id] = "".join(b.text for b in row.result.message.content
                                             if b.type == "text")
            else:
                out[row.custom_id] = ClientError(f"batch request {row.result.type}")
        return out
    batch = client.sdk.batches.retrieve(batch_id)
    text = client.sdk.files.content(batch.output_file_id).text
    for line in filter(str.strip, text.splitlines()):
        row = json.loads(line)
        response = row.get("response") or {}
        try:
            out[row["custom_id"]] = client._reply_text(response["body"])
        except (KeyError, IndexError, TypeError):
            out[row["custom_id"]] = ClientError(f"batch request failed: {row.get('error')}",
                                                json.dumps(row))
    return out


def judge_in_batches(judge, items: Sequence[JudgeInput], state_dir: str | Path, *,
                     max_per_batch: int = 10_000, poll_every: float = 30.0,
                     sleep=None, progress: bool = False) -> list[Verdict]:
    """Verdicts for `items` (input order) from `judge` (an `LLMJudge`) via the batch API.

    Cached items are not sent. A rerun with the same items and judge resumes the batches
    recorded in `state_dir`; the state file is removed once every result is cached.
    """
    client, cache = judge.client, judge.cache
    sleep = sleep or time.sleep  # looked up per call, so a test can stand in for the clock
    state_path = Path(state_dir) / STATE_FILE
    digest = _digest(items, judge.name)
    raws: dict[int, str | ClientError] = {}
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state is not None and state.get("digest") != digest:
        raise RuntimeError(f"{state_path} belongs to another set of items or judge; finish that "
                           "run (rerun it unchanged) or delete the file to start afresh")
    if state is None:
        todo = []
        for i, item in enumerate(items):
            hit = cache.get(item, PROMPT_VERSION) if cache is not None else None
            if hit is not None:
                count(judge.name, cache_hits=1)
                raws[i] = hit
            else:
                todo.append(i)
        state = {"digest": digest, "judge": judge.name, "batches": []}
        for start in range(0, len(todo), max_per_batch):
            chunk = {f"item-{i}": build_user_message(items[i])
                     for i in todo[start:start + max_per_batch]}
            batch_id = _submit(client, chunk)
            count(judge.name, batches=1, calls=len(chunk))
            state["batches"].append({"batch_id": batch_id, "custom_ids": list(chunk)})
            # persisted before any polling: a crash from here on resumes this batch
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps(state, indent=1))
    else:
        count(judge.name, batches_resumed=len(state["batches"]))
    bar = tqdm(total=len(state["batches"]), desc=f"batches ({judge.name})", disable=not progress)
    for batch in state["batches"]:
        try:
            while not _poll(client, batch["batch_id"]):
                sleep(poll_every)
            results = _results(client, batch["batch_id"])
        except ClientError as err:  # the state file stays: the submitted batches are not lost
            raise ClientError(f"{err}; the batch ids are kept in {state_path}: rerun the same "
                              "call to resume them", err.raw) from None
        for cid in batch["custom_ids"]:
            i = int(cid.removeprefix("item-"))
            raws[i] = results.get(cid, ClientError(f"no result for {cid} in {batch['batch_id']}"))
            if isinstance(raws[i], str) and cache is not None:
                cache.put(items[i], raws[i], PROMPT_VERSION)
        bar.update(1)
    bar.close()
    state_path.unlink(missing_ok=True)
    verdicts = []
    for i in range(len(items)):
        raw = raws.get(i)
        if isinstance(raw, str):
            count(judge.name, ok=1)
            verdicts.append(judge.verdict_from_raw(raw))
        else:  # a cached item absent from a resumed state, or a failed request
            raw = raw if raw is not None else _from_cache(judge, items[i])
            if isinstance(raw, str):
                verdicts.append(judge.verdict_from_raw(raw))
                continue
            count(judge.name, failed=1)
            verdicts.append(Verdict(error=f"judge call failed: {raw}", raw=raw.raw,
                                    judge=judge.name))
    return verdicts


def _from_cache(judge, item) -> str | ClientError:
    hit = judge.cache.get(item, PROMPT_VERSION) if judge.cache is not None else None
    return hit if hit is not None else ClientError("item was neither cached nor in a batch")
