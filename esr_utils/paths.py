"""Where things live, found from the package location, never from the working directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "PACKAGE_DIR",
    "DATA_DIR",
    "PROFILES_DIR",
    "REPO_ROOT",
    "BOOK_DIR",
    "NOTEBOOKS_DIR",
    "EXECUTED_NOTEBOOKS_DIR",
    "RESULTS_DIR",
    "cache_dir",
    "cache_lock",
]

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
PROFILES_DIR = PACKAGE_DIR / "profiles"
REPO_ROOT = PACKAGE_DIR.parent
BOOK_DIR = REPO_ROOT / "book"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_NOTEBOOKS_DIR = BOOK_DIR / "notebooks"
RESULTS_DIR = Path(os.environ.get("ESR_RESULTS_DIR", BOOK_DIR / "results"))


def cache_dir() -> Path:
    """User cache for derived files (e.g. dequantized weights); `ESR_CACHE_DIR` overrides it."""
    override = os.environ.get("ESR_CACHE_DIR")
    if override:
        root = Path(override)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "esr_utils"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def cache_lock(name: str):
    """Hold an exclusive lock on `<cache>/locks/<name>.lock` while building a cached folder.

    Two processes that need the same folder (the test workers, two notebooks at once) take
    turns: the second waits, then finds the folder built. Callers check again inside the lock.
    """
    import fcntl  # POSIX only, like the Makefile

    folder = cache_dir() / "locks"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
