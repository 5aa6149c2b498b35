"""A skip fails the run (tests/conftest.py): a test that cannot run means a broken install."""

from __future__ import annotations

import os
import subprocess
import sys

from esr_utils.paths import REPO_ROOT


def test_a_skipped_test_fails_the_run(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "def test_needs_data():\n    pytest.skip('needs the Debian package wordnet-base')\n\n"
        "@pytest.mark.skipif(True, reason='no data')\ndef test_marked():\n    pass\n\n"
        "@pytest.mark.xfail(reason='known', strict=True)\ndef test_known():\n    assert False\n\n"
        "def test_fine():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "tests"),
                                                        str(REPO_ROOT)])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p",
                          "no:cacheprovider", "test_sample.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stdout
    # a skip inside the test fails it; a skip mark fails its setup (an error)
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in run.stdout, run.stdout
    assert "skips count as failures" in run.stdout and "wordnet-base" in run.stdout
