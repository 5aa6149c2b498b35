"""Peak resident memory of the processes a run starts (a chapter's kernel), read from /proc."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["ChildPeakMemory"]

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found = []
    for task in (_PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    out, frontier = [], [pid]
    while frontier:
        kids = [c for p in frontier for c in _children(p)]
        out += kids
        frontier = kids
    return out


def _peak_kib(pid: int) -> int:
    """VmHWM: the highest resident set the process has had so far (KiB); 0 once it has gone."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ChildPeakMemory:
    """Polls the peak RSS of every descendant of this process while a `with` block runs.

    `peak_mb` is the largest single process (the kernel), or None where /proc cannot be read
    (not Linux), so a report says "unknown" rather than a wrong number.
    """

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self._peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        me = os.getpid()
        while not self._stop.wait(self.interval_s):
            for pid in _descendants(me):
                self._peak_kib = max(self._peak_kib, _peak_kib(pid))

    def __enter__(self) -> ChildPeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float | None:
        if not (_PROC / "self" / "status").exists():
            return None
        return round(self._peak_kib / 1024, 1)
