"""Chat-completion backends over httpx: Anthropic's Messages API and OpenAI-compatible servers."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Callable
from urllib.parse import urlparse

import httpx

__all__ = ["MissingAPIKey", "BackendError", "Backend", "AnthropicBackend", "OpenAIBackend",
           "ANTHROPIC_URL", "DEFAULT_ANTHROPIC_MODEL"]

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"  # the paper's judge (§2.1)
# 429 rate limit, 408 timeout, 409 lock, 5xx server trouble, 529 Anthropic "overloaded"
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


class MissingAPIKey(RuntimeError):
    """Raised when a backend is built without its key, before any grading starts."""


class BackendError(RuntimeError):
    """A call that failed for good; `raw` holds the last response body, if any."""

    def __init__(self, message: str, raw: str | None = None):
        super().__init__(message)
        self.raw = raw


class _RateLimiter:
    """At most `per_second` call starts per second, across threads."""

    def __init__(self, per_second: float | None, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class Backend:
    """Sends one system + user message and returns the reply text, retrying transient failures."""

    provider = "base"

    def __init__(self, model: str, *, timeout: float = 120.0, max_retries: int = 5,
                 backoff: float = 2.0, max_backoff: float = 60.0, rate_limit: float | None = 3.0,
                 max_tokens: int = 4096, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.model = model
        self.max_retries = max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.max_tokens = max_tokens
        self._sleep = sleep
        self._limiter = _RateLimiter(rate_limit, sleep=sleep)
        self._client = httpx.Client(timeout=timeout, transport=transport)

    @property
    def judge_id(self) -> str:
        return f"{self.provider}:{self.model}"

    def _request(self, system: str, user: str) -> tuple[str, dict, dict]:
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

    def complete(self, system: str, user: str) -> str:
        """The reply text; raises `BackendError` once retries are spent or on a client error."""
        url, headers, payload = self._request(system, user)
        last_raw = None
        for attempt in range(self.max_retries + 1):
            self._limiter.wait()
            response = None
            try:
                response = self._client.post(url, headers=headers, json=payload)
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                problem = f"{type(exc).__name__}: {exc}"
            else:
                last_raw = response.text
                if response.status_code == 200:
                    try:
                        return self._reply_text(response.json())
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise BackendError(f"unexpected reply shape: {exc!r}", last_raw) from None
                problem = f"HTTP {response.status_code}"
                if response.status_code not in _RETRY_STATUS:
                    raise BackendError(f"{problem}: {last_raw[:500]}", last_raw)
            if attempt < self.max_retries:
                self._sleep(self._delay(attempt, response))
        raise BackendError(f"gave up after {self.max_retries + 1} tries: {problem}", last_raw)

    def close(self) -> None:
        self._client.close()


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


class AnthropicBackend(Backend):
    """Anthropic Messages API; key from `ANTHROPIC_API_KEY`."""

    provider = "anthropic"

    def __init__(self, model: str = DEFAULT_ANTHROPIC_MODEL, *, url: str = ANTHROPIC_URL,
                 api_key_env: str = "ANTHROPIC_API_KEY", **kwargs):
        self._key = _key_from_env(api_key_env, f"The Anthropic judge {model!r}")
        self.url = url
        super().__init__(model, **kwargs)

    def _request(self, system, user):
        headers = {"x-api-key": self._key, "anthropic-version": "2023-06-01",
                   "content-type": "application/json"}
        payload = {"model": self.model, "max_tokens": self.max_tokens, "system": system,
                   "messages": [{"role": "user", "content": user}]}
        return self.url, headers, payload

    def _reply_text(self, body):
        return "".join(block["text"] for block in body["content"] if block.get("type") == "text")


def _is_local(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    return host in {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class OpenAIBackend(Backend):
    """Any OpenAI-compatible `/chat/completions` server: OpenRouter, OpenAI, vLLM, Ollama.

    The key comes from `api_key_env`; by default `OPENROUTER_API_KEY` for OpenRouter and
    `OPENAI_API_KEY` otherwise. Servers on localhost need no key.
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
        super().__init__(model, **kwargs)

    @property
    def judge_id(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def _request(self, system, user):
        headers = {"content-type": "application/json"}
        if self._key:
            headers["authorization"] = f"Bearer {self._key}"
        payload = {"model": self.model, "max_tokens": self.max_tokens,
                   "messages": [{"role": "system", "content": system},
                                {"role": "user", "content": user}]}
        return f"{self.base_url}/chat/completions", headers, payload

    def _reply_text(self, body):
        content = body["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError(f"message content is {content!r}")
        return content
