"""The conda environment and the pip project must describe the same pinned environment."""

from __future__ import annotations

import tomllib

import yaml

from esr_utils.paths import REPO_ROOT


def _pyproject():
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_pins_match_pyproject():
    """A pin changed in one file and not the other would give two different environments."""
    project = _pyproject()
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {line for line in pip_block if not line.startswith("-")}
    assert listed == wanted
    assert "-e ." in pip_block


def test_every_dependency_is_pinned_exactly():
    project = _pyproject()
    deps = list(project["dependencies"]) + [d for e in project["optional-dependencies"].values()
                                            for d in e]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]
    nodeps = (REPO_ROOT / "requirements-nodeps.txt").read_text().split()
    assert nodeps and all("==" in d for d in nodeps)


def test_python_versions_agree():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"
    assert _pyproject()["requires-python"] == ">=3.11,<3.12"
