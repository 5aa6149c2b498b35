"""The chapter memory probe sees a child process's peak, not its own (Linux: reads /proc)."""

import subprocess
import sys

from esr_utils.memory import ChildPeakMemory


def test_peak_of_a_child_that_allocates_200_mb():
    code = ("import time; b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
            "time.sleep(1.5)")
    with ChildPeakMemory(interval_s=0.1) as probe:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert probe.peak_mb is not None and 200 <= probe.peak_mb < 400


def test_no_children_means_zero():
    with ChildPeakMemory(interval_s=0.05) as probe:
        pass
    assert probe.peak_mb == 0.0
