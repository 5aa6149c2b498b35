"""`make test` lints the repository (code and notebooks) with the pinned ruff."""

from __future__ import annotations

import subprocess
import sys

from esr_utils.paths import REPO_ROOT


def test_ruff_check_passes():
    """Settings are in pyproject.toml ([tool.ruff]); `ruff check --fix .` fixes the simple ones."""
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                            str(REPO_ROOT)], capture_output=True, text=True, cwd=REPO_ROOT)
    if "No module named ruff" in found.stderr:
        raise AssertionError("ruff is missing: run `make env` (ruff is in the test extras)")
    assert found.returncode == 0, found.stdout[-6000:] + found.stderr[-2000:]


def test_ruff_reads_notebooks():
    """The notebooks are linted too: ruff lists them among the files it checks."""
    listed = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files",
                             str(REPO_ROOT)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert ".ipynb" in listed.stdout, listed.stdout[-2000:]
