"""The real SDK clients against the local judge stub (127.0.0.1): injected faults, batch judging
resumed after a kill, and no API key in any file a judged run writes."""

from __future__ import annotations

import json

import pytest

from esr_utils.judging import JudgeCache, JudgeInput, LLMJudge
from esr_utils.judging.batches import STATE_FILE
from esr_utils.judging.clients import AnthropicClient, ClientError, OpenAIClient, call_counts
from esr_utils.judging.stub_server import JudgeStub

FAKE = {"ANTHROPIC_API_KEY": "sk-ant-FAKE-0123456789abcdef",
        "OPENAI_API_KEY": "sk-proj-FAKE-fedcba9876543210"}
ITEMS = [JudgeInput(f"Question {i}?", f"Answer {i}. Wait, no. Better answer {i}.", "surfing")
         for i in range(12)]


def grade_for(user: str) -> str:
    """A verdict that names its item, so a verdict landing on the wrong item is caught."""
    n = user.split("Prompt: Question ")[1].split("?")[0]
    return (f'<json>{{"attempts": [{{"attempt_text": "a{n}", "score": {n}}}, '
            f'{{"attempt_text": "b{n}", "score": 90}}]}}</json>')


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    for name, value in FAKE.items():
        monkeypatch.setenv(name, value)


def make(kind: str, stub: JudgeStub, model: str, cache=None, **kwargs) -> LLMJudge:
    common = dict(timeout=0.5, max_retries=4, backoff=0.01, rate_limit=None, **kwargs)
    client = (AnthropicClient(model, base_url=stub.url, **common) if kind == "anthropic"
              else OpenAIClient(model, f"{stub.url}/v1", **common))
    return LLMJudge(client, cache=cache, max_concurrent=1)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_stub_faults_end_as_retries_or_recorded_errors_never_a_crash(kind, tmp_path):
    """Faults within the retry budget are retried to the right verdict; a run of 5 failures on
    one item is one recorded error; every item gets exactly one verdict."""
    faults = [429, 500, "timeout", "garbage", "empty"]  # item 0: five faults, then ok
    with JudgeStub(grade=grade_for, faults=faults, stall_s=1.5) as stub:
        judge = make(kind, stub, f"stub-faults-{kind}", cache=JudgeCache(tmp_path, "x"))
        judge.client.max_retries = 5
        first = judge.judge(ITEMS[0])
        judge.client.max_retries = 4
        stub.faults = [503] * 5  # item 1: retries spent -> one recorded error
        verdicts = [first] + judge.judge_many(ITEMS[1:4])
    assert first.ok and first.scores == [0.0, 90.0]
    assert not verdicts[1].ok and "gave up after 5 tries" in verdicts[1].error
    assert [v.scores for v in verdicts[2:]] == [[2.0, 90.0], [3.0, 90.0]]
    counts = call_counts()[judge.name]
    assert counts["calls"] == 4 and counts["failed"] == 1 and counts["ok"] == 3
    kinds = ("http_429", "timeout", "garbage", "empty")
    assert [counts[k] for k in kinds] == [1, 1, 1, 1]
    assert counts["http_5xx"] == 6 and counts["retries"] == 9


class Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_killed_batch_job_resumes_by_batch_id(kind, tmp_path):
    """Killed while polling, a rerun polls the recorded batch (no second submission) and every
    item gets its own verdict exactly once; a third run is served from the cache."""
    results = tmp_path / "results"
    with JudgeStub(grade=grade_for, batch_polls=3) as stub:
        cache = JudgeCache(tmp_path / "cache", "batch")
        judge = make(kind, stub, f"stub-batch-{kind}", cache=cache)

        def kill(_seconds):
            raise Killed

        with pytest.raises(Killed):
            judge.judge_many(ITEMS, batch_dir=results, sleep=kill, max_per_batch=5)
        state = json.loads((results / STATE_FILE).read_text())
        assert len(state["batches"]) == 3 and len(stub.batches) == 3
        assert sorted(sum((b["custom_ids"] for b in state["batches"]), [])) == sorted(
            f"item-{i}" for i in range(12))

        fresh = make(kind, stub, f"stub-batch-{kind}", cache=cache)  # a new process, same disk
        verdicts = fresh.judge_many(ITEMS, batch_dir=results, sleep=lambda s: None)
        assert len(stub.batches) == 3  # resumed, not resubmitted
        assert [v.scores for v in verdicts] == [[float(i), 90.0] for i in range(12)]
        assert not (results / STATE_FILE).exists() and len(cache) == 12
        submits = [r for r in stub.requests if r[0] == "POST"]
        again = fresh.judge_many(ITEMS, batch_dir=results)
        assert [v.scores for v in again] == [v.scores for v in verdicts]
        assert [r for r in stub.requests if r[0] == "POST"] == submits  # all cache hits


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_batch_status_reads_that_fail_are_retried_then_end_in_an_error_that_keeps_the_batch(
        kind, tmp_path):
    """A timeout or 5xx while polling a batch is retried within the client's budget; past it, the
    error names the batch and the state file, which stays, and a rerun resumes the same batch."""
    results = tmp_path / "results"
    with JudgeStub(grade=grade_for, batch_polls=1, poll_faults=[503, "timeout", 429],
                   stall_s=1.5) as stub:
        judge = make(kind, stub, f"stub-poll-{kind}", cache=JudgeCache(tmp_path / "a", "p"))
        verdicts = judge.judge_many(ITEMS[:4], batch_dir=results, sleep=lambda s: None)
        assert [v.scores for v in verdicts] == [[float(i), 90.0] for i in range(4)]
        assert call_counts()[judge.name]["retries"] == 3

        stub.poll_faults = [500] * 5  # max_retries=4: five failures spend the budget
        judge = make(kind, stub, f"stub-poll2-{kind}", cache=JudgeCache(tmp_path / "b", "p"))
        with pytest.raises(ClientError, match=r"batch \S+ .*HTTP 500.*rerun the same call"):
            judge.judge_many(ITEMS[4:8], batch_dir=results, sleep=lambda s: None)
        assert (results / STATE_FILE).exists() and len(stub.batches) == 2
        again = judge.judge_many(ITEMS[4:8], batch_dir=results, sleep=lambda s: None)
    assert len(stub.batches) == 2  # resumed, not resubmitted
    assert [v.scores for v in again] == [[float(i), 90.0] for i in range(4, 8)]


def test_no_key_appears_in_any_file_a_judged_run_writes(tmp_path, caplog):
    """Fake keys in the environment; a judged run with faults, a batch and an error; then every
    file written (cache, results, logs) is scanned for the key strings."""
    import logging

    from esr_utils.results import write_run_card

    caplog.set_level(logging.DEBUG)
    errors = {}
    with JudgeStub(grade=grade_for, faults=[429, 401, 500], batch_polls=0) as stub:
        for kind in ("anthropic", "openai"):
            judge = make(kind, stub, f"stub-keys-{kind}",
                         cache=JudgeCache(tmp_path / "cache" / kind, kind))
            verdicts = judge.judge_many(ITEMS[:3])
            verdicts += judge.judge_many(ITEMS[3:6], batch_dir=tmp_path / "results" / kind)
            (tmp_path / "results" / kind / "verdicts.jsonl").write_text(
                "\n".join(json.dumps(v.__dict__, default=str) for v in verdicts))
            errors[kind] = [v.error for v in verdicts if not v.ok]
    assert len(errors["anthropic"]) == 1 and "HTTP 401" in errors["anthropic"][0]
    assert errors["openai"] == []
    write_run_card(tmp_path / "results", {"judge": "stub", "env": "fake keys set"})
    (tmp_path / "log.txt").write_text(caplog.text)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for path in files:
        text = path.read_bytes().decode(errors="replace")
        for key in FAKE.values():
            assert key not in text and key[-12:] not in text, f"{key[:10]}… leaked into {path}"
