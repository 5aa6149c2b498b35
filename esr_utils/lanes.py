"""Chapters side by side: which may start, in what order, and with how many threads.

A chapter that other chapters read (chapter 2's stored run, named in their notebooks'
`esr.needs` metadata) runs alone, on every core, so that they can start sooner; the others run
`jobs` at a time, the cores shared out between them. One thread per process is deliberate:
measured on 2 cores, two steered-generation processes of 1 thread each made 79 trials/min
together where one process of 2 threads made 61, and two processes of 2 threads each, which
oversubscribe the cores, made fewer than 45.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from esr_utils.paths import NOTEBOOKS_DIR

__all__ = ["chapter_needs", "run_in_lanes", "threads_per_job"]


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Torch threads for each of `jobs` processes sharing `cores` (the machine's; at least 1)."""
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def chapter_needs(stem: str) -> list[str]:
    """The chapters whose stored results `stem` reads: its notebook's `esr.needs` metadata."""
    nb = json.loads((NOTEBOOKS_DIR / f"{stem}.ipynb").read_text())
    return list(nb.get("metadata", {}).get("esr", {}).get("needs", []))


def run_in_lanes(stems: list[str], run_one: Callable[[str, int], bool], *, jobs: int,
                 cores: int | None = None, needs: dict[str, list[str]] | None = None,
                 keep_going: bool = False) -> dict[str, str]:
    """Run `run_one(stem, threads)` for every chapter, at most `jobs` at a time.

    A chapter starts once every chapter it needs (among `stems`; one outside the run is taken as
    stored already) has succeeded. Returns each chapter's status: "ok", "failed", "skipped" (a
    chapter it needs failed) or "not run" (an earlier failure stopped the run).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    cores = cores or os.cpu_count() or 1
    needs = needs if needs is not None else {s: chapter_needs(s) for s in stems}
    needs = {s: [n for n in needs.get(s, []) if n in stems] for s in stems}
    needed = {n for s in stems for n in needs[s]}
    pending = sorted(stems, key=lambda s: (s not in needed, stems.index(s)))
    status: dict[str, str] = {}
    running: dict = {}  # future -> chapter
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for stem in [s for s in pending if any(status.get(n) in ("failed", "skipped")
                                                   for n in needs[s])]:
                status[stem] = "skipped"
                pending.remove(stem)
            if "failed" in status.values() and not keep_going:
                status.update(dict.fromkeys(pending, "not run"))
                pending = []
            for stem in list(pending):
                alone = stem in needed
                if any(running_stem in needed for running_stem in running.values()):
                    break  # a chapter others need has the machine to itself
                if len(running) >= jobs or (alone and running):
                    break
                if all(status.get(n) == "ok" for n in needs[stem]):
                    threads = cores if alone else threads_per_job(jobs, cores)
                    running[pool.submit(run_one, stem, threads)] = stem
                    pending.remove(stem)
            if not running:
                if pending:  # nothing runs and nothing can start: the needs form a cycle
                    raise ValueError(f"chapters whose needs can never be met: {pending}")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                status[running.pop(future)] = "ok" if future.result() else "failed"
    return {s: status[s] for s in stems}
