"""What a stored trial or verdict was made by: code, SAE and adapter fingerprints, and their diff.

A trial's text is determined by its inputs (prompt, steering, seed, sampling, model, layer) and
by the code that turns them into tokens. Stored records carry a `provenance` next to their key,
and the key folds it in, so a change of code or SAE gives new keys: stale records are never
reused, and `describe_changes` names what changed when a cache-only run finds none.

The code fingerprint is a content hash of each `esr_utils` module on the path: the root module
(e.g. `esr_utils.generation`) and every `esr_utils` module it imports at module level,
transitively. It hashes the syntax tree without docstrings, so comments and formatting do not
count but any change to what the code does does, and it cannot be forgotten like a version.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["code_fingerprint", "module_closure", "sae_sha256", "adapter_sha256",
           "trial_provenance", "verdict_provenance", "describe_changes", "digest",
           "installed_versions", "TRIAL_ROOTS", "TRIAL_PACKAGES"]

# where a trial's text is made; the closure adds models, steering, SAE slicing, prompts, ...
TRIAL_ROOTS = ("esr_utils.generation",)
# libraries whose version can change the generated tokens
TRIAL_PACKAGES = ("torch", "transformers", "nnsight")
_PACKAGE = "esr_utils"
# imported on the path but unable to change a record: settings validation, and this module
# (a change here changes every key by itself)
_NOT_ON_PATH = {"esr_utils.config", "esr_utils.provenance"}


def digest(payload) -> str:
    """SHA-256 of a JSON-serialisable payload (sorted keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _source_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # `pkg.module.Name`: a name imported from a module
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _module_imports(module: str, tree: ast.Module) -> set[str]:
    """`esr_utils` modules imported at module level (including `from esr_utils.x import sub`)."""
    names = set()
    package = module if _source_file(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                break  # deferred imports inside functions are not on the module's path
            if isinstance(sub, ast.Import):
                names.update(a.name for a in sub.names)
            elif isinstance(sub, ast.ImportFrom):
                base = sub.module or ""
                if sub.level:
                    parts = package.split(".")[: len(package.split(".")) - sub.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names.add(base)
                names.update(f"{base}.{a.name}" for a in sub.names)
    return {n for n in names if n.split(".")[0] == _PACKAGE and n != _PACKAGE
            and n not in _NOT_ON_PATH and _source_file(n) is not None}


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def _parsed(module: str) -> tuple[str, frozenset[str]]:
    path = _source_file(module)
    if path is None:
        raise ModuleNotFoundError(f"no Python source for {module!r} (needed for its fingerprint)")
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = frozenset(_module_imports(module, tree))
    code = ast.dump(_strip_docstrings(tree))
    return hashlib.sha256(code.encode()).hexdigest()[:16], imports


def module_closure(roots: Iterable[str]) -> list[str]:
    """The root modules and every `esr_utils` module they import at module level, sorted."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_parsed(name)[1] - seen)
    return sorted(seen)


def code_fingerprint(roots: Iterable[str]) -> dict[str, str]:
    """{module: short hash of its code} over the import closure of `roots`."""
    return {name: _parsed(name)[0] for name in module_closure(roots)}


def sae_sha256(sae) -> str | None:
    """Content hash of an SAE's parameters, computed once and cached on the object.

    An object that already carries `content_sha256` (e.g. set by its loader) is trusted. A
    sae-lens SAE is hashed over its state dict (names, shapes, dtypes, bytes) and architecture;
    an `SaeSlice` over its tensors, so pass the full SAE to get keys independent of slicing.
    """
    if sae is None:
        return None
    cached = getattr(sae, "content_sha256", None)
    if isinstance(cached, str) and cached:
        return cached
    import torch

    if hasattr(sae, "state_dict"):
        tensors = sorted(sae.state_dict().items())
        arch = getattr(getattr(sae, "cfg", None), "architecture", "")
        header = str(arch() if callable(arch) else arch)
    else:  # an SaeSlice (a dataclass of tensors)
        tensors = sorted((k, v) for k, v in vars(sae).items() if isinstance(v, torch.Tensor))
        header = repr({k: v for k, v in vars(sae).items() if isinstance(v, (int, tuple))})
    h = hashlib.sha256(header.encode())
    for name, tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    value = h.hexdigest()
    # a frozen or slotted object refuses the attribute: recompute next time
    with contextlib.suppress(AttributeError, TypeError):
        sae.content_sha256 = value
    return value


def adapter_sha256(spec) -> str | None:
    """The model's adapter (e.g. LoRA) hash, from the spec's optional `adapter_sha256`."""
    return getattr(spec, "adapter_sha256", None)


def installed_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each package (or "not installed"), for keys and run cards."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def trial_provenance(spec=None, sae=None) -> dict:
    """Everything besides a trial's own inputs that determines its text."""
    return {"code": code_fingerprint(TRIAL_ROOTS), "versions": installed_versions(TRIAL_PACKAGES),
            "sae": sae_sha256(sae), "adapter": adapter_sha256(spec)}


def verdict_provenance(judge) -> dict:
    """The judge's name and code (its class's module closure), and its own `fingerprint` if any."""
    module = type(judge).__module__
    code = code_fingerprint([module]) if module.split(".")[0] == _PACKAGE else {}
    return {"judge": getattr(judge, "name", type(judge).__name__), "code": code,
            "judge_fingerprint": getattr(judge, "fingerprint", None)}


def describe_changes(old: Mapping, new: Mapping) -> list[str]:
    """Readable differences between two provenances, e.g. 'code of esr_utils.steering changed'."""
    changes = []
    old_code, new_code = old.get("code") or {}, new.get("code") or {}
    for name in sorted(set(old_code) | set(new_code)):
        if name not in old_code:
            changes.append(f"module {name} is new on the path")
        elif name not in new_code:
            changes.append(f"module {name} is no longer on the path")
        elif old_code[name] != new_code[name]:
            changes.append(f"code of {name} changed ({old_code[name][:8]} -> {new_code[name][:8]})")
    for field, what in (("sae", "SAE"), ("adapter", "adapter"),
                        ("judge_fingerprint", "judge's own fingerprint")):
        if old.get(field) != new.get(field):
            changes.append(f"{what} changed ({str(old.get(field))[:12]} -> "
                           f"{str(new.get(field))[:12]})")
    if old.get("judge") != new.get("judge"):
        changes.append(f"judge changed ({old.get('judge')} -> {new.get('judge')})")
    for name in sorted(set(old.get("versions") or {}) | set(new.get("versions") or {})):
        a, b = (old.get("versions") or {}).get(name), (new.get("versions") or {}).get(name)
        if a != b:
            changes.append(f"{name} version changed ({a} -> {b})")
    return changes
