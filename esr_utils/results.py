"""Append-only JSONL results, resumable after a crash, and run cards."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from esr_utils import stand_ins
from esr_utils.jsonl import JsonlLog, check_writable
from esr_utils.judging.clients import call_counts
from esr_utils.paths import REPO_ROOT
from esr_utils.provenance import installed_versions

__all__ = ["ResultsStore", "RoutedStore", "package_versions", "git_revision", "write_run_card"]

_TRACKED_PACKAGES = ("esr_utils", "torch", "transformers", "nnsight", "sae-lens", "numpy",
                     "papermill", "jupyter-book")


class ResultsStore:
    """One folder per run config; `<name>.jsonl` (default `trials.jsonl`) holds one line per record.

    Records are keyed by `key` (default `trial_id`); a record whose key is stored is never
    written again. Lines are only ever appended, each batch fsynced as it finishes. A line torn
    by a crash (the last line without its newline) is dropped on the next open, with a warning,
    so a rerun produces that record again; a bad line elsewhere raises `CorruptFileError`
    naming the file and line. The folder must be writable: that is checked on open, before any
    work is done whose result could not be stored.
    """

    def __init__(self, directory: str | Path, name: str = "trials", *, key: str = "trial_id"):
        self.directory = Path(directory)
        self.path = self.directory / f"{name}.jsonl"
        self.key = key
        check_writable(self.directory, self.path)
        self._log = JsonlLog(self.path, key)

    def records(self) -> list[dict]:
        return self._log.records()

    def get(self, key: str) -> dict | None:
        return self._log.get(key)

    def done_ids(self) -> set[str]:
        return self._log.keys()

    def append(self, records: Iterable[dict]) -> list[dict]:
        """Store the records whose key is new; returns those written."""
        return self._log.append(records)

    def __len__(self) -> int:
        return len(self._log)


class RoutedStore:
    """Several `ResultsStore`s written as one by a single generation call over several
    conditions (`plans.judged_plans`): `routes` pairs each store with the `content_id`s of its
    trials. A record is stored in every store whose route holds its content id, and counts as
    stored only once all of those stores hold it, so no folder is left incomplete."""

    def __init__(self, routes: Iterable[tuple[ResultsStore, Iterable[str]]]):
        self._routes = [(store, frozenset(ids)) for store, ids in routes]
        self.path = "; ".join(str(store.path) for store, _ in self._routes)

    def records(self) -> list[dict]:
        wanted: dict[str, int] = {}
        for _, ids in self._routes:
            for content in ids:
                wanted[content] = wanted.get(content, 0) + 1
        found: dict[str, list[dict]] = {}
        for store, ids in self._routes:
            for r in store.records():
                if r.get("content_id") in ids:
                    found.setdefault(r["trial_id"], []).append(r)
        return [rs[0] for rs in found.values() if len(rs) == wanted[rs[0]["content_id"]]]

    def append(self, records: Iterable[dict]) -> list[dict]:
        records, written = list(records), []
        for store, ids in self._routes:
            written += store.append([r for r in records if r.get("content_id") in ids])
        return written


def package_versions() -> dict[str, str]:
    """Python and the tracked packages' versions, as recorded in every run card."""
    return {"python": platform.python_version(), **installed_versions(_TRACKED_PACKAGES)}


def git_revision() -> str:
    """The short commit of the repository's HEAD ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_run_card(directory: str | Path, config: dict, timings: dict | None = None,
                   estimates: dict | None = None) -> Path:
    """Write `run_card.json`: config, seeds, package versions, git revision, timings, the
    estimates printed before the work (`throughput.estimate_work`), and the LLM judge calls
    this process made (calls, retries, failures by kind), if any."""
    card = {
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": git_revision(),
        "config": config,
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count()},
        "timings_s": timings or {},
        "estimates": estimates or {},
        "judge_calls": call_counts(),
        # true in the dry run: random-weight stand-ins, so the numbers mean nothing
        "stand_ins": stand_ins.active(),
    }
    path = Path(directory) / "run_card.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
    return path
