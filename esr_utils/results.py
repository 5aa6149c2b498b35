"""Append-only JSONL results, resumable after a crash, and run cards."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Iterable

from esr_utils.paths import REPO_ROOT

__all__ = ["ResultsStore", "package_versions", "write_run_card"]

_TRACKED_PACKAGES = ("esr_utils", "torch", "transformers", "nnsight", "sae-lens", "numpy",
                     "papermill", "jupyter-book")


class ResultsStore:
    """One folder per run config; `<name>.jsonl` (default `trials.jsonl`) holds one line per trial.

    Lines are only ever appended, each batch flushed to disk as it finishes. A line torn by a
    crash (the last line without its newline) is dropped on the next open, with a warning, so a
    rerun regenerates that trial and the store still holds each trial once.
    """

    def __init__(self, directory: str | Path, name: str = "trials"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{name}.jsonl"
        self._repair()

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data[: data.rfind(b"\n") + 1]
        warnings.warn(f"dropping a torn last line from {self.path} (an interrupted write)",
                      stacklevel=3)
        self.path.write_bytes(keep)

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return [json.loads(line) for line in f if line.strip()]

    def done_ids(self) -> set[str]:
        return {r["trial_id"] for r in self.records()}

    def append(self, records: Iterable[dict]) -> None:
        done = self.done_ids()
        lines = []
        for record in records:
            if "trial_id" not in record:
                raise KeyError("every record needs a 'trial_id'")
            if record["trial_id"] in done:
                continue
            done.add(record["trial_id"])
            lines.append(json.dumps(record, sort_keys=True) + "\n")
        if not lines:
            return
        with self.path.open("a") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self.records())


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run_card(directory: str | Path, config: dict, timings: dict | None = None) -> Path:
    """Write `run_card.json`: config, seeds, package versions, git revision, timings."""
    card = {
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": _git_sha(),
        "config": config,
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count()},
        "timings_s": timings or {},
    }
    path = Path(directory) / "run_card.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
    return path
