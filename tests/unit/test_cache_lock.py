"""Two processes that build the same cached folder take turns (the test workers, two notebooks)."""

from __future__ import annotations

import multiprocessing
import time


def _hold(log: str, name: str, start) -> None:
    from esr_utils.paths import cache_lock

    start.wait()  # all processes ask for their lock at the same moment
    with cache_lock(name):
        with open(log, "a") as f:
            f.write("in\n")
        time.sleep(0.4)
        with open(log, "a") as f:
            f.write("out\n")


def test_cache_lock_lets_one_process_in_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("ESR_CACHE_DIR", str(tmp_path / "cache"))  # the children inherit it
    log = tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [context.Process(target=_hold, args=(str(log), "folder", start)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert log.read_text().split() == ["in", "out"] * 3
    assert (tmp_path / "cache" / "locks" / "folder.lock").exists()


def test_cache_locks_of_different_folders_do_not_wait_for_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("ESR_CACHE_DIR", str(tmp_path / "cache"))
    log = tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_hold, args=(str(log), name, start)) for name in "ab"]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text().split() == ["in", "in", "out", "out"]
