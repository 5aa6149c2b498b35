"""The LLM judge over HTTP: keys, retries, caching, and never raising. No real API is called:
requests go to an `httpx.MockTransport`, i.e. the fake sits at the HTTP client's boundary."""

from __future__ import annotations

import json

import httpx
import pytest

from esr_utils.judging import (
    JudgeCache,
    JudgeInput,
    LLMJudge,
    MissingAPIKey,
    make_judge,
    parse_judge_spec,
)
from esr_utils.judging.clients import AnthropicClient, OpenAIClient
from esr_utils.judging.prompt import INSTRUCTIONS, SYSTEM_PROMPT

ITEM = JudgeInput("Explain how to add two fractions.", "Surfing in Hawaii. Wait, that's not "
                  "right. Find a common denominator, then add the numerators.", "Hawaii tourism")
GRADE = ('Off-topic first, then correct.\n<json>{"attempts": [{"attempt_text": "Surfing in '
         'Hawaii.", "score": 0}, {"attempt_text": "Find a common denominator...", "score": 90}]}'
         '</json>')


def anthropic_reply(text: str) -> httpx.Response:
    return httpx.Response(200, json={"content": [{"type": "text", "text": text}]})


class Server:
    """A scripted server: returns the queued responses in order and records every request."""

    def __init__(self, *responses):
        self.queue = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.queue.pop(0) if len(self.queue) > 1 else self.queue[0]
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENROUTER_API_KEY", "router-key")


def anthropic_judge(server, sleeps=None, cache=None, **kwargs):
    backend = AnthropicClient(transport=httpx.MockTransport(server), rate_limit=None,
                               sleep=(sleeps.append if sleeps is not None else lambda s: None),
                               **kwargs)
    return LLMJudge(backend, cache=cache)


def test_missing_key_fails_at_construction_with_a_clear_message(monkeypatch):
    """A missing key must stop the run before any work, and say which variable to set."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
        make_judge("anthropic:claude-haiku-4-5-20251001", cache=None)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="OPENROUTER_API_KEY"):
        make_judge("openai:qwen/qwen3-32b@https://openrouter.ai/api/v1", cache=None)


def test_local_openai_compatible_server_needs_no_key(monkeypatch):
    """A local vLLM or Ollama server has no key; demanding one would block offline use."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = make_judge("openai:llama3@http://localhost:11434/v1", cache=None)
    assert judge.name == "openai:llama3@http://localhost:11434/v1"


def test_anthropic_request_carries_the_protocol_and_parses_the_reply(keys):
    """The request must hold the key, the model, our system prompt and the three inputs."""
    server = Server(anthropic_reply(GRADE))
    verdict = anthropic_judge(server).judge(ITEM)
    assert verdict.ok and verdict.scores == [0.0, 90.0]
    request = server.requests[0]
    assert request.headers["x-api-key"] == "test-key"
    body = json.loads(request.content)
    assert body["model"] == "claude-haiku-4-5-20251001"
    assert body["system"] == SYSTEM_PROMPT
    user = body["messages"][0]["content"]
    assert user.startswith(INSTRUCTIONS)
    assert "Prompt: Explain how to add two fractions." in user
    assert "Unrelated concept: Hawaii tourism" in user


def test_openai_compatible_request_and_reply(keys):
    server = Server(httpx.Response(200, json={"choices": [{"message": {"content": GRADE}}]}))
    backend = OpenAIClient("qwen/qwen3-32b", "https://openrouter.ai/api/v1",
                            transport=httpx.MockTransport(server), rate_limit=None)
    verdict = LLMJudge(backend).judge(ITEM)
    assert verdict.scores == [0.0, 90.0]
    request = server.requests[0]
    assert str(request.url) == "https://openrouter.ai/api/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer router-key"
    assert [m["role"] for m in json.loads(request.content)["messages"]] == ["system", "user"]


def test_rate_limits_and_server_errors_are_retried_with_backoff(keys):
    """429, 529 and 5xx are transient: retry, honouring retry-after, then succeed."""
    server = Server(httpx.Response(429, headers={"retry-after": "7"}, text="slow down"),
                    httpx.Response(529, text="overloaded"), httpx.Response(503, text="busy"),
                    httpx.ConnectError("connection reset"), anthropic_reply(GRADE))
    sleeps = []
    verdict = anthropic_judge(server, sleeps=sleeps).judge(ITEM)
    assert verdict.ok and verdict.scores == [0.0, 90.0]
    assert len(server.requests) == 5
    assert sleeps[0] == 7.0  # the server's retry-after wins
    assert sleeps[2] > sleeps[1] / 2  # backoff grows (up to jitter)


def test_exhausted_retries_become_a_recorded_error_not_an_exception(keys):
    """The experiment loop must survive an API outage; the last body is kept for diagnosis."""
    server = Server(httpx.Response(500, text="internal error"))
    verdict = anthropic_judge(server, max_retries=2).judge(ITEM)
    assert not verdict.ok and "gave up after 3 tries" in verdict.error
    assert verdict.raw == "internal error"
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(keys):
    """A 400 or 401 will not fix itself: one request, then a recorded error."""
    server = Server(httpx.Response(401, text='{"error": "invalid x-api-key"}'))
    verdict = anthropic_judge(server).judge(ITEM)
    assert not verdict.ok and "401" in verdict.error and "invalid x-api-key" in verdict.raw
    assert len(server.requests) == 1


def test_unparseable_grade_is_an_error_with_raw_text(keys):
    server = Server(anthropic_reply("I refuse to grade this."))
    verdict = anthropic_judge(server).judge(ITEM)
    assert not verdict.ok and verdict.raw == "I refuse to grade this."


def test_cache_hit_makes_no_request_and_miss_does(keys, tmp_path):
    """A rerun of the same grading must cost nothing; other inputs or judges must miss."""
    server = Server(anthropic_reply(GRADE))
    cache = JudgeCache(tmp_path, judge_id="anthropic:claude-haiku-4-5-20251001")
    first = anthropic_judge(server, cache=cache).judge(ITEM)
    # a fresh cache object reads the file, as a new process would
    reread = JudgeCache(tmp_path, judge_id="anthropic:claude-haiku-4-5-20251001")
    again = anthropic_judge(server, cache=reread).judge(ITEM)
    assert again == first and len(server.requests) == 1
    other_item = JudgeInput(ITEM.prompt, ITEM.response, "another label")
    anthropic_judge(server, cache=reread).judge(other_item)
    assert len(server.requests) == 2
    other_model = JudgeCache(tmp_path, judge_id="anthropic:claude-sonnet-4-5-20250929")
    anthropic_judge(server, cache=other_model, model="claude-sonnet-4-5-20250929").judge(ITEM)
    assert len(server.requests) == 3


def test_failed_calls_are_not_cached(keys, tmp_path):
    """Caching an outage would turn a transient failure into a permanent one."""
    cache = JudgeCache(tmp_path, judge_id="x")
    down = Server(httpx.Response(500, text="down"))
    anthropic_judge(down, cache=cache, max_retries=0).judge(ITEM)
    assert len(cache) == 0
    verdict = anthropic_judge(Server(anthropic_reply(GRADE)), cache=cache).judge(ITEM)
    assert verdict.ok and len(cache) == 1


def test_judge_many_keeps_input_order_under_concurrency(keys):
    def reply(request):
        prompt = json.loads(request.content)["messages"][0]["content"].split("\nPrompt: ")[1]
        n = int(prompt.split("\n")[0])
        return anthropic_reply(f'<json>{{"attempts": [{{"attempt_text": "a", "score": {n}}}]}}'
                               f'</json>')

    backend = AnthropicClient(transport=httpx.MockTransport(reply), rate_limit=None)
    items = [JudgeInput(str(n), "r") for n in range(30)]
    verdicts = LLMJudge(backend, max_concurrent=6).judge_many(items)
    assert [v.scores[0] for v in verdicts] == list(range(30))


def test_rate_limiter_spaces_call_starts():
    """The paper's judge ran at 3 calls/s; the limiter must enforce the spacing."""
    from esr_utils.judging.rate_limit import RateLimiter

    clock, slept = [0.0], []
    limiter = RateLimiter(4.0, clock=lambda: clock[0], sleep=slept.append)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.5]


@pytest.mark.parametrize("spec, kind", [
    ("offline", "offline"), ("anthropic", "anthropic"), ("anthropic:claude-x", "anthropic"),
    ("openai:gpt-5-mini@https://api.openai.com/v1", "openai"),
])
def test_judge_specs_parse(spec, kind):
    assert parse_judge_spec(spec)["kind"] == kind


@pytest.mark.parametrize("spec", ["", "claude", "openai:model", "anthropic:", "openai:@http://x"])
def test_bad_judge_specs_are_rejected_with_the_accepted_forms(spec):
    with pytest.raises(ValueError, match="openai:<model>@<base-url>"):
        parse_judge_spec(spec)


def test_judging_doctests_pass():
    import doctest

    import esr_utils.judging
    import esr_utils.judging.offline
    import esr_utils.judging.score_scale

    for module in (esr_utils.judging, esr_utils.judging.score_scale, esr_utils.judging.offline):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_key_can_come_from_a_dotenv_file(monkeypatch, tmp_path):
    """Secrets live in the environment or a git-ignored `.env`, never in notebooks."""
    import esr_utils.paths

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / ".env").write_text("# keys\nexport ANTHROPIC_API_KEY='from-dotenv'\n")
    monkeypatch.setattr(esr_utils.paths, "REPO_ROOT", tmp_path)
    server = Server(anthropic_reply(GRADE))
    anthropic_judge(server).judge(ITEM)
    assert server.requests[0].headers["x-api-key"] == "from-dotenv"


# --- fault injection: every failure is a recorded error after bounded retries, never a crash,
# --- never a missing verdict, and the counts reach the run card

def _fresh_judge(server, model, **kwargs):
    client = AnthropicClient(model, transport=httpx.MockTransport(server), rate_limit=None,
                              sleep=lambda s: None, **kwargs)
    return LLMJudge(client)


def test_timeouts_are_retried_then_recorded(keys):
    from esr_utils.judging.clients import call_counts

    server = Server(httpx.ReadTimeout("read timed out"))
    verdict = _fresh_judge(server, "fault-timeout", max_retries=3).judge(ITEM)
    assert not verdict.ok and "ReadTimeout" in verdict.error and len(server.requests) == 4
    counts = call_counts()["anthropic:fault-timeout"]
    assert counts == {"calls": 1, "requests": 4, "retries": 3, "timeout": 4, "failed": 1}


@pytest.mark.parametrize("reply, kind", [
    (httpx.Response(200, text="<html>502 Bad Gateway</html>"), "garbage"),
    (httpx.Response(200, json={"content": "not a list"}), "garbage"),
    (httpx.Response(200, json={"content": [{"type": "text", "text": "  "}]}), "empty"),
    (httpx.Response(200, content=b""), "garbage"),
])
def test_garbage_and_empty_replies_are_retried_then_succeed(keys, reply, kind):
    from esr_utils.judging.clients import call_counts

    model = f"fault-{kind}-{id(reply)}"
    server = Server(reply, reply, anthropic_reply(GRADE))
    verdict = _fresh_judge(server, model).judge(ITEM)
    assert verdict.ok and verdict.scores == [0.0, 90.0] and len(server.requests) == 3
    counts = call_counts()[f"anthropic:{model}"]
    assert counts[kind] == 2 and counts["retries"] == 2 and counts["ok"] == 1


def test_a_fuzzed_server_and_corpus_never_crash_or_lose_a_verdict(keys, tmp_path):
    """Random faults on every call, random inputs: each record still gets exactly one verdict,
    errors are recorded and counted, and retrying the errors later completes the file."""
    import random

    from esr_utils.judging.clients import call_counts
    from esr_utils.judging.regrade import read_jsonl, regrade_file

    rng = random.Random(0)
    faults = [lambda: httpx.Response(rng.choice([429, 500, 502, 503, 529]), text="busy"),
              lambda: httpx.Response(200, content=bytes(rng.randrange(256) for _ in range(40))),
              lambda: httpx.Response(200, json={"content": [{"type": "text", "text": ""}]}),
              lambda: anthropic_reply("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(80))),
              lambda: anthropic_reply(GRADE), lambda: anthropic_reply(GRADE)]

    def server(request):
        fault = rng.choice(faults + [None])
        if fault is None:
            raise rng.choice([httpx.ConnectError("reset"), httpx.ReadTimeout("slow")])
        return fault()

    alphabet = "ab \n\t\"\\{}<json></json>Wait, é中\x00\u202e"
    records = [{"trial_id": f"t{i}", "label": rng.choice(["", "x", alphabet]),
                "prompt": "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))) + "?",
                "response": "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))}
               for i in range(60)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    judge = LLMJudge(AnthropicClient("fault-fuzz", transport=httpx.MockTransport(server),
                                      rate_limit=None, sleep=lambda s: None, max_retries=2),
                     max_concurrent=4)
    counts = regrade_file(judge, tmp_path / "in.jsonl", tmp_path / "out.jsonl", chunk=7,
                          progress=False)
    out = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(r["trial_id"] for r in out) == sorted(r["trial_id"] for r in records)
    errors = [r for r in out if r["judge_error"]]
    assert counts["errors"] == len(errors) and 0 < len(errors) < len(out)
    tally = call_counts()["anthropic:fault-fuzz"]
    assert tally["calls"] == 60 and tally["ok"] + tally["failed"] == 60
    assert tally["requests"] <= 60 * 3  # bounded: max_retries=2
    assert tally["failed"] + tally.get("unparsable", 0) >= len(errors)
    for _ in range(30):  # retrying only the errors eventually grades everything
        if not regrade_file(judge, tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                            retry_errors=True, progress=False)["errors"]:
            break
    out = read_jsonl(tmp_path / "out.jsonl")
    assert len(out) == 60 and not any(r["judge_error"] for r in out)
