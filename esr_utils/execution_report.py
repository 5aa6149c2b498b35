"""The runner's report of each chapter's last execution, per profile.

`book/notebooks/execution_report_<profile>.json` holds each chapter's latest outcome (status,
wall time, peak memory, threads, commit, finish time) and, after a run of every chapter, the
`WHOLE_BOOK` entry with the book's wall time; appendix A3 shows them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from esr_utils.paths import EXECUTED_NOTEBOOKS_DIR, file_lock

__all__ = ["WHOLE_BOOK", "REPORT_DIR", "record_execution", "read_reports"]

# the entry for a run of every chapter: its wall time, beside each chapter's own
WHOLE_BOOK = "whole book"
REPORT_DIR = EXECUTED_NOTEBOOKS_DIR


def record_execution(profile: str, stem: str, entry: dict) -> Path:
    """Add one chapter's outcome (or `WHOLE_BOOK`'s) to the profile's report as soon as it is
    known.

    Each chapter keeps its latest entry, stamped with the time and the code revision, so a run
    of a few chapters (`--only`) or a run that stopped half-way leaves the others' entries in
    place.
    """
    from esr_utils.results import git_revision

    path = REPORT_DIR / f"execution_report_{profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(path.name + ".lock")):  # chapters side by side (--jobs)
        report = json.loads(path.read_text()) if path.exists() else {}
        report[stem] = {**entry, "git": git_revision(),
                        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path.write_text(json.dumps(report, indent=2))
    return path


def read_reports() -> dict:
    """Every profile's report, keyed by profile."""
    return {path.stem.removeprefix("execution_report_"): json.loads(path.read_text())
            for path in sorted(REPORT_DIR.glob("execution_report_*.json"))}
