"""The read audit the smoke test relies on: it records reads, and it flags reads from outside."""

from __future__ import annotations

import os
import subprocess
import sys

from esr_utils.paths import DATA_DIR, REPO_ROOT
from esr_utils.read_audit import ENV_VAR, allowed_roots, outside_reads, read_paths


def _run_audited(code: str, log) -> None:
    env = {**os.environ, ENV_VAR: str(log), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT)


def test_a_read_outside_the_allowed_roots_is_flagged(tmp_path):
    """A deliberate read of a file and a folder outside the repository fails the audit."""
    outside = tmp_path / "stray" / "wordlist.txt"
    outside.parent.mkdir()
    outside.write_text("ant\nbee\n")
    log = tmp_path / "reads.log"
    _run_audited(f"import os, esr_utils; from esr_utils.prompts import load_prompts; "
                 f"load_prompts(); open({str(outside)!r}).read(); "
                 f"os.listdir({str(outside.parent)!r}); "
                 f"open({str(tmp_path / 'written.txt')!r}, 'w').write('x'); "
                 f"import tempfile, pathlib; made = pathlib.Path(tempfile.mkdtemp()); "
                 f"(made / 'own.txt').write_text('x'); (made / 'own.txt').read_text(); "
                 f"os.listdir(made)", log)
    reads = read_paths(log)
    assert str(DATA_DIR / "prompts_eval.txt") in reads
    assert str(tmp_path / "written.txt") not in reads, "a write is not a read"
    # what the run made itself (a temporary folder and a file in it) it may read back
    assert outside_reads(log) == [str(outside), str(outside.parent)]
    assert outside_reads(log, extra_roots=[tmp_path]) == []


def test_only_the_kernels_own_cell_files_are_allowed_in_tmp(tmp_path):
    import tempfile

    cell = f"{tempfile.gettempdir()}/ipykernel_123/4567.py"
    stray = f"{tempfile.gettempdir()}/elsewhere/4567.py"
    log = tmp_path / "reads.log"
    log.write_text(f"R {cell}\nR {stray}\n")
    assert outside_reads(log) == [stray]


def test_without_the_variable_nothing_is_recorded(tmp_path):
    log = tmp_path / "reads.log"
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    subprocess.run([sys.executable, "-c", "import esr_utils; open(__import__('os').devnull)"],
                   check=True, env={**env, "PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path)
    assert not log.exists()


def test_allowed_roots_are_the_repository_the_environment_and_the_cache():
    roots = allowed_roots()
    assert REPO_ROOT.resolve() in roots
    assert any((r / "site-packages").exists() or r.name == "site-packages" for r in roots)
    assert not any(r == r.parent for r in roots), "the filesystem root would allow everything"
