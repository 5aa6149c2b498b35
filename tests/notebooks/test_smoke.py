"""Every chapter in the TOC executes under the smoke profile; then the book builds strictly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from esr_utils.paths import BOOK_DIR
from esr_utils.runner import execute_notebook, toc_notebooks

STEMS = toc_notebooks()
pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """A copy of the book's sources whose notebooks/ will hold the smoke-executed chapters."""
    root = tmp_path_factory.mktemp("smoke-book") / "book"
    shutil.copytree(BOOK_DIR, root, ignore=shutil.ignore_patterns("_build", "notebooks", "results"))
    (root / "notebooks").mkdir()
    return root


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_executes_under_smoke(stem, smoke_book):
    execute_notebook(stem, "smoke", output_dir=smoke_book / "notebooks", timeout_s=900)
    assert (smoke_book / "notebooks" / f"{stem}.ipynb").exists()


def test_book_builds_with_warnings_as_errors(smoke_book):
    """Runs after the chapters (file order); executes any chapter that was deselected."""
    for stem in STEMS:
        if not (smoke_book / "notebooks" / f"{stem}.ipynb").exists():
            execute_notebook(stem, "smoke", output_dir=smoke_book / "notebooks", timeout_s=900)
    jb = [str(Path(sys.executable).parent / "jupyter-book")]
    subprocess.run([*jb, "clean", str(smoke_book)], check=True, capture_output=True)
    built = subprocess.run([*jb, "build", str(smoke_book), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-6000:] + built.stderr[-3000:]
    html = smoke_book / "_build" / "html"
    built_pages = sorted(str(p.relative_to(html)) for p in html.rglob("*.html"))
    for page in ["intro.html", "glossary.html"] + [f"notebooks/{s}.html" for s in STEMS]:
        assert page in built_pages, (page, built_pages)
