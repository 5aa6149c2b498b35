"""Chapters side by side (`runner --jobs`): needs kept, cores shared out, failures contained."""

from __future__ import annotations

import os
import re
import threading
import time

import nbformat
import pytest

from esr_utils.lanes import chapter_needs, run_in_lanes
from esr_utils.paths import NOTEBOOKS_DIR
from esr_utils.runner import toc_notebooks

STEMS = ["01", "02", "03", "04", "05", "A1"]
NEEDS = {"03": ["02"], "04": ["02"], "05": ["02"]}


class Recorder:
    """A fake chapter run: logs starts and ends, tracks how many run at once, fails on demand."""

    def __init__(self, fail=()):
        self.fail, self.events, self.threads = set(fail), [], {}
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __call__(self, stem: str, threads: int) -> bool:
        with self.lock:
            self.events.append(("start", stem))
            self.threads[stem] = threads
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)
        with self.lock:
            self.events.append(("end", stem))
            self.now -= 1
        return stem not in self.fail

    def running_with(self, stem: str) -> set[str]:
        """Chapters that were running at some moment while `stem` ran."""
        live, seen, on = set(), set(), False
        for kind, s in self.events:
            live = live | {s} if kind == "start" else live - {s}
            on = (on or s == stem) and not (kind == "end" and s == stem)
            if on:
                seen |= live
        return seen - {stem}


def test_a_needed_chapter_runs_alone_on_every_core_then_the_rest_share_them():
    run = Recorder()
    status = run_in_lanes(STEMS, run, jobs=2, cores=2, needs=NEEDS)
    assert status == dict.fromkeys(STEMS, "ok")
    assert run.events[0] == ("start", "02")  # it unblocks three chapters, so it goes first
    assert run.running_with("02") == set()
    assert run.threads["02"] == 2
    assert all(run.threads[s] == 1 for s in STEMS if s != "02")
    assert run.most == 2
    ends = {s: i for i, (kind, s) in enumerate(run.events) if kind == "end"}
    starts = {s: i for i, (kind, s) in enumerate(run.events) if kind == "start"}
    assert all(starts[s] > ends["02"] for s in ("03", "04", "05"))


def test_one_job_runs_the_chapters_one_after_another_in_order():
    run = Recorder()
    run_in_lanes(STEMS, run, jobs=1, cores=2, needs=NEEDS)
    assert run.most == 1
    assert [s for kind, s in run.events if kind == "start"] == ["02", "01", "03", "04", "05", "A1"]


def test_a_failed_chapter_skips_what_needs_it_and_keep_going_runs_the_rest():
    run = Recorder(fail={"02"})
    status = run_in_lanes(STEMS, run, jobs=2, cores=2, needs=NEEDS, keep_going=True)
    assert status == {"01": "ok", "02": "failed", "03": "skipped", "04": "skipped",
                      "05": "skipped", "A1": "ok"}
    stopped = run_in_lanes(STEMS, Recorder(fail={"02"}), jobs=2, cores=2, needs=NEEDS)
    assert stopped["02"] == "failed"
    assert set(stopped.values()) == {"failed", "skipped", "not run"}


def test_a_need_outside_the_run_counts_as_stored_and_a_cycle_is_an_error():
    run = Recorder()
    assert run_in_lanes(["03", "04"], run, jobs=2, cores=2, needs=NEEDS) == {"03": "ok",
                                                                            "04": "ok"}
    assert run.most == 2
    with pytest.raises(ValueError, match="never be met"):
        run_in_lanes(["x", "y"], Recorder(), jobs=2, cores=2, needs={"x": ["y"], "y": ["x"]})
    with pytest.raises(ValueError, match="at least 1"):
        run_in_lanes(STEMS, Recorder(), jobs=0)


def test_every_chapter_that_reads_chapter_2_says_so():
    """`esr_run.chapter_run` reads chapter 2's stored run: such a chapter must list it in its
    `esr.needs` metadata, or `--jobs` could start it before chapter 2 has stored anything."""
    stems = toc_notebooks()
    for stem in stems:
        nb = nbformat.read(NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        needs = chapter_needs(stem)
        if re.search(r"\bchapter_run\(", code):
            assert "02_esr_across_models" in needs, stem
        assert all(stems.index(n) < stems.index(stem) for n in needs), (stem, needs)
    assert chapter_needs("03_detection_vs_resistance") == ["02_esr_across_models"]


def test_the_runner_starts_each_chapter_in_a_process_of_its_own(monkeypatch, tmp_path):
    import subprocess

    from esr_utils import execution_report, runner

    commands = []

    def fake_run(command, *args, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(execution_report, "REPORT_DIR", tmp_path)
    stems = ["01_steering_setup", "02_esr_across_models", "03_detection_vs_resistance"]
    assert runner.main(["--profile", "smoke", "--only", *stems, "--jobs", "2",
                        "--skip-preflight"]) == 0
    only = [c[c.index("--only") + 1] for c in commands]
    assert only[0] == "02_esr_across_models" and sorted(only) == sorted(stems)
    threads = {c[c.index("--only") + 1]: int(c[c.index("--threads") + 1]) for c in commands}
    assert threads["02_esr_across_models"] == (os.cpu_count() or 1)  # alone, every core
    assert threads["01_steering_setup"] == max(1, (os.cpu_count() or 1) // 2)


def test_threads_cap_a_chapters_own_thread_parameter():
    from types import SimpleNamespace

    from esr_utils.runner import _thread_overrides

    capped = SimpleNamespace(profile="cpu", threads=1)
    assert _thread_overrides(capped, "06_fine_tuning") == {"THREADS": 1}
    assert _thread_overrides(capped, "05_meta_prompting") == {}
    assert _thread_overrides(SimpleNamespace(profile="cpu", threads=None), "06_fine_tuning") == {}
