"""Chat clients over the official SDKs: Anthropic's Messages API and OpenAI-compatible servers.

("Client", not "backend": in this project a backend is where the model runs, local or NDIF.)
Every call is counted per judge in a process-wide tally (`call_counts()`), which the run card
records: calls, HTTP requests, retries, and failures by kind.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

import httpx

from esr_utils.judging.rate_limit import RateLimiter
from esr_utils.judging.tally import call_counts, count

__all__ = ["MissingAPIKey", "ClientError", "ChatClient", "AnthropicClient", "OpenAIClient",
           "ANTHROPIC_URL", "DEFAULT_ANTHROPIC_MODEL", "call_counts", "count"]

ANTHROPIC_URL = "https://api.anthropic.com"  # the SDK's default base URL
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"  # the paper's judge, Claude 4.5 Haiku (§2.1)
# 429 rate limit, 408 timeout, 409 lock, 5xx server trouble, 529 Anthropic "overloaded"
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
T = TypeVar("T")


class MissingAPIKey(RuntimeError):
    """Raised when a client is built without its key, before any grading starts."""


class ClientError(RuntimeError):
    """A call that failed for good; `raw` holds the last response body, if any."""

    def __init__(self, message: str, raw: str | None = None):
        super().__init__(message)
        self.raw = raw


def _failure_kind(status: int) -> str:
    return "http_429" if status == 429 else "http_5xx" if status >= 500 else f"http_{status}"


def _sdk(name: str):
    """The official SDK module `name`, imported on first use (offline runs never need it)."""
    try:
        return __import__(name)
    except ImportError as exc:
        raise ImportError(f"The {name} judge needs the official `{name}` package; install the "
                          f"project's pinned environment (`make env`)") from exc


class ChatClient:
    """Sends one system + user message through an official SDK and returns the reply text.

    The SDK builds the request, authenticates, enforces `timeout` and raises typed errors; its
    own retries are switched off (`max_retries=0` on the SDK client) because this loop retries
    more than the SDK would (a 200 reply that is garbage or empty) and counts every attempt for
    the run card. Timeouts, dropped connections, 408/409/429/5xx and garbage or empty replies are
    retried at most `max_retries` times with backoff (honouring `retry-after`); then, or at once
    for any other 4xx, `complete` raises `ClientError`.
    """

    provider = "base"

    def __init__(self, model: str, *, timeout: float = 120.0, max_retries: int = 5,
                 backoff: float = 2.0, max_backoff: float = 60.0, rate_limit: float | None = 3.0,
                 max_tokens: int = 4096, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.model = model
        self.max_retries = max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._sleep = sleep
        self._limiter = RateLimiter(rate_limit, sleep=sleep)
        # tests and the local stub inject a transport; the SDK otherwise makes its own client
        self._http = httpx.Client(timeout=timeout, transport=transport) if transport else None
        self.sdk = self._make_sdk()

    @property
    def judge_id(self) -> str:
        return f"{self.provider}:{self.model}"

    def _make_sdk(self):
        raise NotImplementedError

    def _post(self, system: str, user: str):
        """One SDK call with the raw response kept (`with_raw_response`)."""
        raise NotImplementedError

    def _reply_text(self, body: dict) -> str:
        raise NotImplementedError

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            try:
                return min(float(response.headers["retry-after"]), self.max_backoff)
            except (KeyError, ValueError):
                pass
        # exponential backoff with jitter, so parallel workers do not retry in lockstep
        return min(self.backoff * 2 ** attempt, self.max_backoff) * (0.5 + random.random() / 2)

    def _classify(self, exc: Exception) -> tuple[str, str, httpx.Response | None, bool]:
        """(problem, kind, response, retryable) for an SDK error; both SDKs share the names."""
        if type(exc).__name__ == "APITimeoutError":
            cause = exc.__cause__ or exc  # the httpx exception says which phase timed out
            return f"timeout: {type(cause).__name__}: {cause}", "timeout", None, True
        response = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None)
        if status is not None and response is not None:  # APIStatusError and its subclasses
            return f"HTTP {status}", _failure_kind(status), response, status in _RETRY_STATUS
        if type(exc).__name__ == "APIConnectionError":  # refused connections, resets
            return f"{type(exc).__name__}: {exc.__cause__ or exc}", "transport", None, True
        raise exc

    def complete(self, system: str, user: str) -> str:
        """The reply text; raises `ClientError` once retries are spent or on a client error."""
        errors = (_sdk(self.provider).APIError,)
        last_raw, problem = None, ""
        count(self.judge_id, calls=1)
        for attempt in range(self.max_retries + 1):
            if attempt:
                count(self.judge_id, retries=1)
            self._limiter.wait()
            count(self.judge_id, requests=1)
            response = None
            try:
                raw = self._post(system, user)
            except errors as exc:
                problem, kind, response, retryable = self._classify(exc)
                if response is not None:
                    last_raw = response.text
                if not retryable:
                    count(self.judge_id, failed=1, **{kind: 1})
                    raise ClientError(f"{problem}: {(last_raw or '')[:500]}", last_raw) from None
            else:
                last_raw = raw.http_response.text
                try:
                    text = self._reply_text(json.loads(last_raw))
                except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                    problem, kind = f"unexpected reply shape: {exc!r}", "garbage"
                else:
                    if text.strip():
                        count(self.judge_id, ok=1)
                        return text
                    problem, kind = "empty reply", "empty"
            count(self.judge_id, **{kind: 1})
            if attempt < self.max_retries:
                self._sleep(self._delay(attempt, response))
        count(self.judge_id, failed=1)
        raise ClientError(f"gave up after {self.max_retries + 1} tries: {problem}", last_raw)

    def retrying(self, call: Callable[[], T], what: str) -> T:
        """`call()`, an SDK request other than a chat message (a batch submit, poll or result
        download), retried like `complete` on timeouts, dropped connections and 408/409/429/5xx;
        then, or at once for any other 4xx, `ClientError` naming `what`."""
        errors = (_sdk(self.provider).APIError,)
        for attempt in range(self.max_retries + 1):
            try:
                return call()
            except errors as exc:
                problem, kind, response, retryable = self._classify(exc)
                count(self.judge_id, **{kind: 1})
                if not retryable or attempt == self.max_retries:
                    raise ClientError(f"{what}: {problem} (after {attempt + 1} tries)",
                                      response.text if response is not None else None) from None
                count(self.judge_id, retries=1)
                self._sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.sdk.close()


def _dotenv(name: str) -> str:
    """`name` from the repository's git-ignored `.env` (lines `NAME=value`), if there is one."""
    from esr_utils.paths import REPO_ROOT

    path = REPO_ROOT / ".env"
    if not path.exists():
        return ""
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return ""


def _key_from_env(name: str, what: str) -> str:
    key = os.environ.get(name, "").strip() or _dotenv(name)
    if not key:
        raise MissingAPIKey(f"{what} needs an API key in the environment variable {name}; set it "
                            f"(or put it in a git-ignored .env) or use the offline judge "
                            f"(--judge offline / JUDGE = \"offline\")")
    return key


class AnthropicClient(ChatClient):
    """Anthropic Messages API through the `anthropic` SDK; key from `ANTHROPIC_API_KEY`.

    `base_url` (default: the SDK's, or `ANTHROPIC_BASE_URL`) points it at a proxy or the stub.
    A server on this machine is not paced (`rate_limit` applies to remote providers).
    """

    provider = "anthropic"

    def __init__(self, model: str = DEFAULT_ANTHROPIC_MODEL, *, base_url: str | None = None,
                 api_key_env: str = "ANTHROPIC_API_KEY", **kwargs):
        self._key = _key_from_env(api_key_env, f"The Anthropic judge {model!r}")
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        if self.base_url and _is_local(self.base_url):
            kwargs.setdefault("rate_limit", None)  # the pacing protects a provider's quota
        super().__init__(model, **kwargs)

    @property
    def judge_id(self) -> str:
        # another address is another judge: its grades must never share the API's cache (the
        # dry run's stub answers at 127.0.0.1 under the paper judge's model name); a server on
        # this machine is named by its host alone, so a stub restarted on another port is the
        # same judge to the chapters that replay a stored run
        address = self.base_url.rstrip("/") if self.base_url else ANTHROPIC_URL
        if address == ANTHROPIC_URL:
            return super().judge_id
        return super().judge_id + "@" + (urlparse(address).hostname if _is_local(address)
                                         else address)

    def _make_sdk(self):
        return _sdk("anthropic").Anthropic(api_key=self._key, base_url=self.base_url,
                                           timeout=self.timeout, max_retries=0,
                                           http_client=self._http)

    def request_body(self, system: str, user: str) -> dict:
        return {"model": self.model, "max_tokens": self.max_tokens, "system": system,
                "messages": [{"role": "user", "content": user}]}

    def _post(self, system, user):
        return self.sdk.messages.with_raw_response.create(**self.request_body(system, user))

    def _reply_text(self, body):
        return "".join(block["text"] for block in body["content"] if block.get("type") == "text")


def _is_local(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class OpenAIClient(ChatClient):
    """Any OpenAI-compatible `/chat/completions` server (OpenRouter, OpenAI, vLLM, Ollama)
    through the `openai` SDK.

    The key comes from `api_key_env`; by default `OPENROUTER_API_KEY` for OpenRouter and
    `OPENAI_API_KEY` otherwise. Servers on localhost need no key (the SDK then sends a
    placeholder, since it insists on one).
    """

    provider = "openai"

    def __init__(self, model: str, base_url: str, *, api_key_env: str | None = None, **kwargs):
        self.base_url = base_url.rstrip("/")
        if api_key_env is None:
            api_key_env = "OPENROUTER_API_KEY" if "openrouter.ai" in base_url else "OPENAI_API_KEY"
        if _is_local(base_url) and not os.environ.get(api_key_env):
            self._key = None
        else:
            self._key = _key_from_env(api_key_env, f"The judge {model!r} at {base_url}")
        if _is_local(base_url):
            kwargs.setdefault("rate_limit", None)
        super().__init__(model, **kwargs)

    @property
    def judge_id(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def _make_sdk(self):
        return _sdk("openai").OpenAI(api_key=self._key or "no-key-for-local-server",
                                     base_url=self.base_url, timeout=self.timeout,
                                     max_retries=0, http_client=self._http)

    def request_body(self, system: str, user: str) -> dict:
        return {"model": self.model, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}]}

    def _post(self, system, user):
        return self.sdk.chat.completions.with_raw_response.create(**self.request_body(system, user))

    def _reply_text(self, body):
        content = body["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError(f"message content is {content!r}")
        return content
