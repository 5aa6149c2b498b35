"""The SAE subpackage: every module imports on its own, none is too long, none re-exports lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import esr_utils.saes

ROOT = Path(esr_utils.saes.__file__).parent
MODULES = sorted(ROOT.rglob("*.py"))


def _name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent.parent).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """A cycle hidden by import order shows up when a module is imported first."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    for path in MODULES:
        result = subprocess.run([sys.executable, "-c", code, _name(path)], capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{_name(path)}: {result.stderr[-500:]}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p))
def test_modules_are_short_and_have_no_module_getattr(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 300
    tree = ast.parse(source)
    assert not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
    assert "embedded_dense_dir" not in source, "use models.embedded_dense_dir()"
