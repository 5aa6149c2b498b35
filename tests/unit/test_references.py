"""References resolve: every repository path the code, docs and notebooks cite exists, and nothing
points at notes the repository does not ship."""

from __future__ import annotations

import os
import re

import pytest

from esr_utils.paths import REPO_ROOT

TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".yml", ".yaml", ".toml", ".txt", ".cfg", ""}
# the project's working notes; they are not in the repository, so nothing may point at them
UNSHIPPED = re.compile(r"\b(paper|upstream|ecosystem|design|house-style)\.md\b")
# a path inside the repository: starts at a top-level folder, e.g. `esr_utils/data/README.md`
CITED = re.compile(r"(?<![\w/.~-])((?:esr_utils|book|notebooks|tests|\.ci)/[\w./<>{}*,-]*\w)")
# written by runs, not shipped
GENERATED = ("book/results/", "book/notebooks/", "book/_build/")


# not part of the shipped tree (environments, caches, build outputs); no git needed to list it
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "build",
                ".ruff_cache"}


def shipped_files() -> list[str]:
    found = []
    for folder, dirs, files in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for file in files:
            name = os.path.relpath(os.path.join(folder, file), REPO_ROOT)
            if os.path.splitext(file)[1] in TEXT_SUFFIXES and not name.startswith(GENERATED):
                found.append(name)
    return sorted(found)


def as_glob(cited: str) -> list[str]:
    """`a/{x,y}.yaml` -> two globs; `<name>`, `{name}` and `*` stand for any name."""
    alternatives = re.search(r"\{([^{}]*,[^{}]*)\}", cited)
    if alternatives:
        return [g for option in alternatives.group(1).split(",")
                for g in as_glob(cited.replace(alternatives.group(0), option.strip(), 1))]
    return [re.sub(r"<[^<>]*>|\{[^{}]*\}", "*", cited).rstrip("/.,")]


def cited_paths(text: str) -> set[str]:
    return {m.group(1) for m in CITED.finditer(text)}


def test_glob_expansion():
    assert as_glob("esr_utils/profiles/{smoke,cpu}.yaml") == ["esr_utils/profiles/smoke.yaml",
                                                              "esr_utils/profiles/cpu.yaml"]
    assert as_glob("esr_utils/data/prompts_<name>.txt") == ["esr_utils/data/prompts_*.txt"]
    assert cited_paths("see `esr_utils/paths.py` and my/esr_utils/x.py") == {"esr_utils/paths.py"}
    assert resolves("esr_utils/paths.py", "README.md")
    assert resolves("notebooks/A2_judges", "book/_toc.yml")
    assert not resolves("esr_utils/no_such_module.py", "README.md")


@pytest.mark.parametrize("name", shipped_files())
def test_no_pointer_to_unshipped_notes(name):
    text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
    found = sorted({m.group(0) for m in UNSHIPPED.finditer(text)})
    assert not found, (f"{name} points at {found}, which the repository does not ship: cite the "
                       "paper's sections, figures or appendices, or book/differences.md")


def resolves(cited: str, citing: str) -> bool:
    """The path exists from the repository root or from the citing file's folder (as the book's
    TOC cites chapters), with or without an extension."""
    for base in (REPO_ROOT, (REPO_ROOT / citing).parent):
        for pattern in as_glob(cited):
            if any(base.glob(pattern)) or any(base.glob(pattern + ".*")):
                return True
    return False


def test_every_cited_repository_path_exists():
    """Code, docs and notebooks (tests cite made-up paths on purpose, so they are left out)."""
    missing = []
    for name in shipped_files():
        if name.startswith("tests/"):
            continue
        text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
        for cited in sorted(cited_paths(text)):
            if cited.startswith(GENERATED) or cited.rstrip("/") + "/" in GENERATED:
                continue
            if not resolves(cited, name):
                missing.append(f"{name}: {cited}")
    assert not missing, "cited paths that do not exist:\n" + "\n".join(missing)
