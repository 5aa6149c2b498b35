"""Which files a run reads: an audit hook that logs every file and folder a chapter opens.

The smoke test sets `ESR_READ_AUDIT=<log file>` for the notebook kernel; importing `esr_utils`
then installs the hook (`install`), and `outside_reads` lists the reads that fall outside the
repository, the Python environment and the model cache. A chapter that needs anything else (a
Debian package's files, a download folder, the user's home) fails the test on a fresh machine
only by luck, so the test fails it everywhere.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

from esr_utils.paths import REPO_ROOT, cache_dir

__all__ = ["ENV_VAR", "install", "install_from_env", "allowed_roots", "read_paths",
           "outside_reads"]

ENV_VAR = "ESR_READ_AUDIT"
# pseudo-filesystems: the machine's state (CPU count, memory, devices), not files a chapter needs
SYSTEM_STATE = ("proc", "sys", "dev")
# the official judge SDKs (anthropic, openai) read it to name the OS in their request headers
SYSTEM_FILES = ("/etc/os-release",)
_INSTALLED: list[str] = []


def _kind(mode, flags) -> str:
    """"W" for an open that may create or only writes (the run's own file), else "R"."""
    if isinstance(mode, str):
        return "W" if any(c in mode for c in "wax") else "R"
    if isinstance(flags, int) and (flags & os.O_CREAT or flags & 3 == os.O_WRONLY):
        return "W"
    return "R"


def install(log_path: str | Path) -> None:
    """From now on, log `R <path>` for each file read or folder listed, and `W <path>` for each
    file written or folder made (once per process)."""
    if _INSTALLED:
        return
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives with the process)
    _INSTALLED.append(str(log_path))

    def hook(event, args):
        # nothing in here may raise an audit event itself (no open, no listdir)
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if path is None or isinstance(path, int):
                return
            kind = _kind(mode, flags)
        elif event in ("os.listdir", "os.scandir"):
            path, kind = (args[0] if args else "."), "R"
        elif event == "os.mkdir":
            path, kind = args[0], "W"
        else:
            return
        if isinstance(path, int):
            return
        try:
            log.write(f"{kind} {os.path.abspath(os.fsdecode(path))}\n")
        except (TypeError, ValueError):
            return

    sys.addaudithook(hook)


def install_from_env() -> None:
    """Install the hook if `ESR_READ_AUDIT` names a log file (called when esr_utils is imported)."""
    if os.environ.get(ENV_VAR):
        install(os.environ[ENV_VAR])


def allowed_roots() -> list[Path]:
    """The repository, the Python environment (prefixes, stdlib, site-packages, the import path)
    and the model cache."""
    roots = [REPO_ROOT, cache_dir(), Path(sys.prefix), Path(sys.base_prefix),
             Path(sys.exec_prefix), Path(sys.base_exec_prefix), Path(site.getusersitepackages())]
    roots += [Path(p) for p in site.getsitepackages()]
    roots += [Path(p) for p in sysconfig.get_paths().values()]
    roots += [Path(p) for p in sys.path if p and os.path.isabs(p)]
    return [r.resolve() for r in roots]


def _entries(log_path: str | Path, kind: str) -> list[str]:
    lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(line[2:] for line in lines if line.startswith(kind + " ")))


def read_paths(log_path: str | Path) -> list[str]:
    """The distinct paths a run read, in first-read order."""
    return _entries(log_path, "R")


def _kernel_cell(path: Path) -> bool:
    """A notebook cell's own source, which ipykernel names `<tmp>/ipykernel_<pid>/<hash>.py`;
    tracebacks and warnings read their lines back from there."""
    return (path.parent.name.startswith("ipykernel_")
            and path.parent.parent == Path(tempfile.gettempdir()))


def _inside(path: Path, roots) -> bool:
    return any(path == r or r in path.parents for r in roots)


def outside_reads(log_path: str | Path, extra_roots=()) -> list[str]:
    """Paths read outside `allowed_roots()`, `SYSTEM_STATE`, `extra_roots` and what the run
    itself wrote (e.g. a temporary folder a library made and then lists)."""
    roots = allowed_roots() + [Path(r).resolve() for r in extra_roots]
    written = {Path(p) for p in _entries(log_path, "W")}
    outside = []
    for path in read_paths(log_path):
        if path.split("/")[1] in SYSTEM_STATE or path in SYSTEM_FILES:
            continue
        if Path(path) in written or _inside(Path(path), written) or _kernel_cell(Path(path)):
            continue
        if not _inside(Path(path).resolve(), roots):
            outside.append(path)
    return outside
