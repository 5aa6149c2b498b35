"""A local judge server for tests and dry runs: speaks the Anthropic Messages API, the OpenAI
chat-completions API and both batch APIs on 127.0.0.1, with scripted verdicts and faults.

    with JudgeStub(faults=[429, "timeout", 500, "garbage"]) as stub:
        client = AnthropicClient("stub", base_url=stub.url)

Interactive requests take their fate from `faults` in order (then succeed): an int is that HTTP
status, "timeout" stalls past the client's timeout, "garbage" is a 200 that is not JSON and
"empty" a 200 with no text. Batches end after `batch_polls` status reads; batch status reads take
their fate from `poll_faults` the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["JudgeStub", "DEFAULT_GRADE", "hashed_grade"]

DEFAULT_GRADE = ('Stub grade.\n<json>{"attempts": [{"attempt_text": "first", "score": 10}, '
                 '{"attempt_text": "second", "score": 80}]}</json>')


def hashed_grade(user: str) -> str:
    """A verdict drawn from a hash of the judge's user message: the same answer always gets the
    same scores, answers differ, and about one in five is graded as two attempts (the dry run).
    A message ending in a JSON list of labels (the concreteness grader's) gets one rating each,
    and a recovery-rubric request a recovery score and kind."""
    digest = int(hashlib.sha256(user.encode()).hexdigest(), 16)
    if user.startswith("Rate how well this response recovers"):  # chapter 3's recovery rubric
        from esr_utils.recovery import RUBRIC_KINDS

        grade = {"recovery": digest % 11, "kind": RUBRIC_KINDS[(digest >> 8) % len(RUBRIC_KINDS)]}
        return f"<json>{json.dumps(grade)}</json>"
    with contextlib.suppress(ValueError):
        labels = json.loads(user[user.rfind("["):])
        if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
            return json.dumps([{"label": x, "rating": (digest >> i) % 101}
                               for i, x in enumerate(labels)])
    attempts = [{"attempt_text": "stub first attempt", "score": digest % 101}]
    if digest % 5 == 0:
        attempts.append({"attempt_text": "stub second attempt", "score": (digest >> 16) % 101})
    return f"Stub grade (hash of the item).\n<json>{json.dumps({'attempts': attempts})}</json>"


class JudgeStub:
    """The server; `requests` logs (method, path) of every request, `batches` the submitted ones."""

    def __init__(self, *, grade: Callable[[str], str] | str = DEFAULT_GRADE, faults=(),
                 batch_polls: int = 1, stall_s: float = 2.0, poll_faults=()):
        self.grade = grade if callable(grade) else (lambda user, g=grade: g)
        self.faults = list(faults)
        self.poll_faults = list(poll_faults)
        self.batch_polls, self.stall_s = batch_polls, stall_s
        self.requests: list[tuple[str, str]] = []
        self.batches: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def next_fault(self, queue: list | None = None):
        queue = self.faults if queue is None else queue
        with self._lock:
            return queue.pop(0) if queue else None

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}_{len(self.batches) + len(self.files) + 1:04d}"


def _anthropic_message(text: str) -> dict:
    return {"id": "msg_stub", "type": "message", "role": "assistant", "model": "stub",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}


def _openai_completion(text: str) -> dict:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}


def _last_user(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def _handler(stub: JudgeStub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status: int, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            if status == 429:
                self.send_header("retry-after", "0")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)  # fails when the client timed out first

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        def do_POST(self):
            stub.requests.append(("POST", self.path))
            raw = self._body()
            if self.path.endswith("/messages") or self.path.endswith("/chat/completions"):
                return self._interactive(json.loads(raw))
            if self.path.endswith("/messages/batches"):
                return self._anthropic_batch(json.loads(raw))
            if self.path.endswith("/files"):
                return self._upload(raw)
            if self.path.endswith("/batches"):
                return self._openai_batch(json.loads(raw))
            self._send(404, {"error": {"type": "not_found", "message": self.path}})

        def _interactive(self, body):
            fault = stub.next_fault()
            anthropic = self.path.endswith("/messages")
            if isinstance(fault, int):
                return self._send(fault, {"type": "error", "error": {"type": "stub_fault",
                                                                      "message": str(fault)}})
            if fault == "timeout":
                time.sleep(stub.stall_s)
            if fault == "garbage":
                return self._send(200, b"<html>bad gateway</html>", "text/html")
            text = "" if fault == "empty" else stub.grade(_last_user(body))
            self._send(200, _anthropic_message(text) if anthropic else _openai_completion(text))

        def _anthropic_batch(self, body):
            batch_id = stub.new_id("msgbatch")
            results = [{"custom_id": r["custom_id"], "result": {
                "type": "succeeded",
                "message": _anthropic_message(stub.grade(_last_user(r["params"])))}}
                for r in body["requests"]]
            stub.batches[batch_id] = {"kind": "anthropic", "results": results, "polls": 0}
            self._send(200, self._anthropic_batch_view(batch_id))

        def _anthropic_batch_view(self, batch_id):
            batch = stub.batches[batch_id]
            ended = batch["polls"] > stub.batch_polls
            n = len(batch["results"])
            return {"id": batch_id, "type": "message_batch",
                    "processing_status": "ended" if ended else "in_progress",
                    "request_counts": {"processing": 0 if ended else n,
                                       "succeeded": n if ended else 0, "errored": 0,
                                       "canceled": 0, "expired": 0},
                    "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z",
                    "ended_at": "2026-01-01T00:01:00Z" if ended else None,
                    "archived_at": None, "cancel_initiated_at": None,
                    "results_url": (f"{stub.url}/v1/messages/batches/{batch_id}/results"
                                    if ended else None)}

        def _upload(self, raw):
            msg = BytesParser().parsebytes(
                f"content-type: {self.headers['content-type']}\r\n\r\n".encode() + raw)
            content = next(p.get_payload(decode=True) for p in msg.get_payload()
                           if p.get_param("name", header="content-disposition") == "file")
            file_id = stub.new_id("file")
            stub.files[file_id] = content
            self._send(200, {"id": file_id, "object": "file", "bytes": len(content),
                             "created_at": 0, "filename": "batch.jsonl", "purpose": "batch"})

        def _openai_batch(self, body):
            batch_id = stub.new_id("batch")
            lines = [json.loads(line) for line in stub.files[body["input_file_id"]].splitlines()
                     if line.strip()]
            out = "\n".join(json.dumps({"id": f"r{i}", "custom_id": r["custom_id"], "error": None,
                                        "response": {"status_code": 200, "body": _openai_completion(
                                            stub.grade(_last_user(r["body"])))}})
                            for i, r in enumerate(lines))
            stub.files[f"{batch_id}_out"] = out.encode()
            stub.batches[batch_id] = {"kind": "openai", "polls": 0, "input": body["input_file_id"]}
            self._send(200, self._openai_batch_view(batch_id))

        def _openai_batch_view(self, batch_id):
            batch = stub.batches[batch_id]
            ended = batch["polls"] > stub.batch_polls
            return {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions",
                    "input_file_id": batch["input"], "completion_window": "24h",
                    "status": "completed" if ended else "in_progress", "created_at": 0,
                    "output_file_id": f"{batch_id}_out" if ended else None}

        def do_GET(self):
            stub.requests.append(("GET", self.path))
            parts = self.path.strip("/").split("/")
            if parts[-1] == "results" and parts[-2] in stub.batches:
                lines = "\n".join(json.dumps(r) for r in stub.batches[parts[-2]]["results"])
                return self._send(200, lines.encode(), "application/binary")
            if parts[-1] == "content" and parts[-2] in stub.files:
                return self._send(200, stub.files[parts[-2]], "application/binary")
            if parts[-1] in stub.batches:
                fault = stub.next_fault(stub.poll_faults)
                if isinstance(fault, int):
                    return self._send(fault, {"type": "error", "error": {
                        "type": "stub_fault", "message": str(fault)}})
                if fault == "timeout":
                    time.sleep(stub.stall_s)
                batch = stub.batches[parts[-1]]
                batch["polls"] += 1
                view = (self._anthropic_batch_view if batch["kind"] == "anthropic"
                        else self._openai_batch_view)
                return self._send(200, view(parts[-1]))
            self._send(404, {"error": {"type": "not_found", "message": self.path}})

    return Handler
