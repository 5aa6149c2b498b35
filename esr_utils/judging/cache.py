"""On-disk cache of judge outputs, keyed by judge model, prompt version and inputs."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from esr_utils.jsonl import JsonlLog
from esr_utils.judging.types import JudgeInput

__all__ = ["JudgeCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """`<cache>/judge`, or `ESR_JUDGE_CACHE_DIR` (the dry run points it at a throwaway folder)."""
    from esr_utils.paths import cache_dir

    override = os.environ.get("ESR_JUDGE_CACHE_DIR")
    return Path(override) if override else cache_dir() / "judge"


class JudgeCache:
    """Append-only JSONL, one file per judge model; a rerun of the same grading costs nothing.

    Only the judge's raw text is stored, so a parser fix applies to cached grades too. Failed
    calls (no raw text) are never stored, so they are retried on the next run. A line torn by a
    crash is dropped on open (that item is graded again); a corrupt line elsewhere is an error
    naming the file and line (`esr_utils.jsonl`).
    """

    def __init__(self, directory: str | Path | None = None, judge_id: str = "judge"):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in judge_id)
        self.path = self.directory / f"{safe}.jsonl"
        self.judge_id = judge_id
        self._lock = threading.Lock()
        self._log = JsonlLog(self.path, "key")
        self._entries = {row["key"]: row["raw"] for row in self._log.records()}

    def key(self, item: JudgeInput, version: str = "") -> str:
        blob = json.dumps([self.judge_id, version, item.digest()]).encode()
        return hashlib.sha256(blob).hexdigest()

    def get(self, item: JudgeInput, version: str = "") -> str | None:
        return self._entries.get(self.key(item, version))

    def put(self, item: JudgeInput, raw: str, version: str = "") -> None:
        key = self.key(item, version)
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = raw
            self._log.append([{"key": key, "raw": raw}])

    def __len__(self) -> int:
        return len(self._entries)

