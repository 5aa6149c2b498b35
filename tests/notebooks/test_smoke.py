"""Every chapter in the TOC executes under the smoke profile, exercise solutions included, reading
nothing outside the repository, the Python environment and the model cache; then the book builds
strictly and renders offline (local MathJax, one parameters cell per chapter)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from esr_utils.config import notebook_parameters
from esr_utils.paths import BOOK_DIR, NOTEBOOKS_DIR, REPO_ROOT
from esr_utils.read_audit import ENV_VAR, outside_reads, read_paths
from esr_utils.runner import execute_notebook, toc_notebooks

from .html_checks import check_built_book

STEMS = toc_notebooks()
pytestmark = pytest.mark.notebooks
SOLUTION_TAG = "exercise-solution"
_DROPDOWN = re.compile(r"^(?P<fence>:{3,}|`{3,})\{dropdown\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$",
                       flags=re.M | re.S)
_PYTHON = re.compile(r"^(?P<fence>`{3,}|~{3,})python\n(?P<code>.*?)^(?P=fence)\s*$",
                     flags=re.M | re.S)


def solution_blocks(nb) -> list[str]:
    """The python code blocks inside the `{dropdown}` solutions of a notebook's markdown."""
    blocks = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for dropdown in _DROPDOWN.finditer(cell.source):
                blocks += [m["code"] for m in _PYTHON.finditer(dropdown["body"])]
    return blocks


def with_solutions(stem: str, folder: Path) -> Path:
    """A copy of the chapter with each exercise solution appended as a cell the book removes."""
    nb = nbformat.read(NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    for code in solution_blocks(nb):
        nb.cells.append(nbformat.v4.new_code_cell(code, metadata={
            "tags": ["remove-cell", SOLUTION_TAG]}))
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """A copy of the book's sources whose notebooks/ will hold the smoke-executed chapters."""
    root = tmp_path_factory.mktemp("smoke-book") / "book"
    shutil.copytree(BOOK_DIR, root, ignore=shutil.ignore_patterns("_build", "notebooks", "results"))
    (root / "notebooks").mkdir()
    return root


def run_chapter(stem: str, smoke_book: Path, tmp: Path, monkeypatch) -> Path:
    """Execute one chapter, solutions appended, with the read audit on; returns the log."""
    sources = tmp / "sources"
    sources.mkdir(exist_ok=True)
    log = tmp / f"reads-{stem}.log"
    monkeypatch.setenv(ENV_VAR, str(log))  # the papermill kernel inherits it
    execute_notebook(stem, "smoke", output_dir=smoke_book / "notebooks", timeout_s=900,
                     source=with_solutions(stem, sources))
    return log


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_executes_under_smoke(stem, smoke_book, tmp_path, monkeypatch):
    log = run_chapter(stem, smoke_book, tmp_path, monkeypatch)
    nb = nbformat.read(smoke_book / "notebooks" / f"{stem}.ipynb", as_version=4)
    assert nb.metadata.papermill.parameters == notebook_parameters("smoke", stem)
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [c.source[:60] for c in code if c.execution_count is None]
    assert not not_run, f"cells that never ran: {not_run}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    solutions = [c for c in code if SOLUTION_TAG in c.metadata.get("tags", [])]
    assert len(solutions) == len(solution_blocks(nbformat.read(
        NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)))
    # the read audit ran in the kernel (it saw the repository's files) and found nothing outside
    reads = read_paths(log)
    assert any(p.startswith(str(REPO_ROOT)) for p in reads), f"no reads recorded in {log}"
    # the kernel's working folder is on its import path ('' in sys.path), so imports list it
    outside = outside_reads(log, extra_roots=[smoke_book / "notebooks"])
    assert not outside, (f"{stem} read files outside the repository, the Python environment "
                         f"and the model cache (ship them or take them from a pinned package): "
                         f"{outside[:20]}")


def test_every_chapter_with_exercises_has_runnable_solutions():
    """The solutions the smoke run executes are found: the dropdown parser is not blind."""
    found = {stem: len(solution_blocks(nbformat.read(NOTEBOOKS_DIR / f"{stem}.ipynb",
                                                     as_version=4))) for stem in STEMS}
    assert sum(found.values()) > 0, found
    sample = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "text\n\n:::{dropdown} Solution\n```python\nx = 1\n```\nprose\n:::\n\n"
        "````{dropdown} Solution\n```python\ny = 2\n```\n````\n\n"
        "```python\nnot_a_solution()\n```\n\n```{dropdown} Solution\n~~~python\nz = 3\n~~~\n```")])
    assert solution_blocks(sample) == ["x = 1\n", "y = 2\n", "z = 3\n"]


def test_book_builds_with_warnings_as_errors(smoke_book, tmp_path, monkeypatch):
    """Runs after the chapters (file order); executes any chapter that was deselected."""
    for stem in STEMS:
        if not (smoke_book / "notebooks" / f"{stem}.ipynb").exists():
            run_chapter(stem, smoke_book, tmp_path, monkeypatch)
    jb = [str(Path(sys.executable).parent / "jupyter-book")]
    subprocess.run([*jb, "clean", str(smoke_book)], check=True, capture_output=True)
    built = subprocess.run([*jb, "build", str(smoke_book), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-6000:] + built.stderr[-3000:]
    html = smoke_book / "_build" / "html"
    built_pages = sorted(str(p.relative_to(html)) for p in html.rglob("*.html"))
    for page in ["intro.html", "glossary.html", "differences.html"] + [
            f"notebooks/{s}.html" for s in STEMS]:
        assert page in built_pages, (page, built_pages)
    problems = check_built_book(html, STEMS, profile="smoke")
    assert not problems, "\n".join(problems)
