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
from pathlib import Path

from esr_utils.paths import REPO_ROOT, cache_dir

__all__ = ["ENV_VAR", "install", "install_from_env", "allowed_roots", "read_paths",
           "outside_reads"]

ENV_VAR = "ESR_READ_AUDIT"
# pseudo-filesystems: the machine's state (CPU count, memory, devices), not files a chapter needs
SYSTEM_STATE = ("/proc", "/sys", "/dev")
_INSTALLED: list[str] = []


def _is_read(mode, flags) -> bool:
    if isinstance(mode, str):
        return "r" in mode or "+" in mode
    if isinstance(flags, int):
        return flags & (os.O_WRONLY | os.O_RDWR) != os.O_WRONLY
    return True


def install(log_path: str | Path) -> None:
    """Append `<path>` for every file read and folder listed from now on (once per process)."""
    if _INSTALLED:
        return
    log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives with the process)
    _INSTALLED.append(str(log_path))

    def hook(event, args):
        # nothing in here may raise an audit event itself (no open, no listdir)
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            if path is None or isinstance(path, int) or not _is_read(mode, flags):
                return
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else "."
            if isinstance(path, int):
                return
        else:
            return
        try:
            log.write(os.path.abspath(os.fsdecode(path)) + "\n")
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


def read_paths(log_path: str | Path) -> list[str]:
    """The distinct paths a run read, in first-read order."""
    seen = dict.fromkeys(line for line in Path(log_path).read_text().splitlines() if line)
    return list(seen)


def outside_reads(log_path: str | Path, extra_roots=()) -> list[str]:
    """Paths read outside `allowed_roots()`, `SYSTEM_STATE` and `extra_roots`."""
    roots = allowed_roots() + [Path(r).resolve() for r in extra_roots]
    outside = []
    for path in read_paths(log_path):
        if path.startswith(SYSTEM_STATE) and path.split("/")[1] in {"proc", "sys", "dev"}:
            continue
        resolved = Path(path).resolve()
        if not any(resolved == r or r in resolved.parents for r in roots):
            outside.append(path)
    return outside
