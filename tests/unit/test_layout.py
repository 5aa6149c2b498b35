"""The package's layout: every module imports on its own, imports form no cycle, modules stay short.

Cycles count deferred imports too (an import inside a function): a cycle hidden that way still
ties two modules together, and linters and readers cannot follow it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import esr_utils

PACKAGE = Path(esr_utils.__file__).parent
MAX_LINES = 310  # "about 300": a module longer than this wants splitting


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return (found & known) - {name}


def imported_package_modules(path: Path) -> set[str]:
    """Every `esr_utils...` module a file imports, deferred imports included (absolute form)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("esr_utils")}
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith(
                "esr_utils"):
            found.add(node.module)
    return found


def test_every_package_import_names_an_existing_module():
    """A deferred import of a renamed module only fails when its function runs: catch it here."""
    known = set(_modules())
    stale = sorted(f"{path.relative_to(PACKAGE.parent)}: {m}" for path in _modules().values()
                   for m in imported_package_modules(path) if m not in known)
    assert not stale, "imports of modules that do not exist:\n" + "\n".join(stale)


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if not state.get(nxt):
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if not state.get(node):
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_too_long_or_uses_module_getattr():
    for name, path in _modules().items():
        source = path.read_text()
        assert len(source.splitlines()) <= MAX_LINES, f"{name} has over {MAX_LINES} lines: split it"
        tree = ast.parse(source)
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in names, f"{name} defines a module-level __getattr__"


def test_every_module_imports_in_a_fresh_interpreter():
    """Every module imports in a new process (in name order), whatever ran before it."""
    names = [n for n in _modules() if not n.endswith("__main__")]
    script = ("import importlib, sys\nbad = []\n"
              f"for name in {names!r}:\n"
              "    try:\n        importlib.import_module(name)\n"
              "    except Exception as err:\n        bad.append(f'{name}: {err!r}')\n"
              "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
