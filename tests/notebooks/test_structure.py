"""Lint every notebook in the TOC without running it (the book's chapter template)."""

from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest

from esr_utils.config import PROFILES, load_profile, notebook_parameters
from esr_utils.paths import NOTEBOOKS_DIR
from esr_utils.runner import toc_notebooks

STEMS = toc_notebooks()
FORBIDDEN = [r"^\s*[!%]pip", r"sys\.path", r"os\.chdir", r"['\"]/(work|tmp|root|home|Users)/"]


def _nb(stem):
    return nbformat.read(NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)


def _parameters(nb) -> dict:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged `parameters`"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), f"parameters cell holds only assignments: {node}"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only
    return values


def test_toc_lists_notebooks():
    assert STEMS, "book/_toc.yml lists no notebooks"
    assert len(set(STEMS)) == len(STEMS)


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_is_stored_without_outputs(stem):
    for cell in _nb(stem).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("stem", STEMS)
def test_every_cell_has_a_unique_id(stem):
    """nbformat 4.5 cells need ids (a cell added by hand without one warns now, fails later)."""
    raw = json.loads((NOTEBOOKS_DIR / f"{stem}.ipynb").read_text())
    ids = [c.get("id") for c in raw["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), [c["source"][:1] for c in raw["cells"]
                                                    if not c.get("id")]


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_follows_the_chapter_template(stem):
    nb = _nb(stem)
    first = nb.cells[0]
    number = stem.split("_")[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {number} · ")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len(re.findall(r"^# ", markdown, flags=re.M)) == 1, "one H1 only"
    for heading in ("## Overview", "## Results", "## Summary", "## Exercises"):
        assert re.search(rf"^{heading}\s*$", markdown, flags=re.M), heading
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_has_no_path_hacks_or_installs(stem):
    for cell in _nb(stem).cells:
        for pattern in FORBIDDEN:
            assert not re.search(pattern, cell.source, flags=re.M), (pattern, cell.source[:80])


@pytest.mark.parametrize("stem", STEMS)
def test_parameter_defaults_are_the_cpu_profile(stem):
    """One source for settings: the notebook's defaults are exactly the cpu profile's."""
    defaults = _parameters(_nb(stem))
    assert notebook_parameters("cpu", stem) == defaults


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stem", STEMS)
def test_profiles_set_only_known_parameters(stem, profile):
    defaults = _parameters(_nb(stem))
    assert stem in load_profile(profile)["notebooks"], f"{profile}.yaml has no {stem} section"
    unknown = set(notebook_parameters(profile, stem)) - set(defaults)
    assert not unknown, f"{profile}.yaml sets parameters {stem} does not have: {unknown}"
