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
    "build_once",
    "file_lock",
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
def file_lock(path: Path):
    """Hold an exclusive lock on the file `path` (created if missing) for the `with` block.

    Two processes that build the same cached folder or update the same report take turns.
    """
    import fcntl  # POSIX only, like the Makefile

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_lock(name: str):
    """`file_lock` on `<cache>/locks/<name>.lock`, held while a cached folder is built."""
    return file_lock(cache_dir() / "locks" / f"{name}.lock")


def build_once(name: str, done, build) -> None:
    """Call `build()` unless `done()`, holding `cache_lock(name)` while it builds.

    A second process (a test worker, a second notebook) that finds the folder unbuilt waits for
    the lock, then checks again, and reuses what the first one built.
    """
    if not done():
        with cache_lock(name):
            if not done():
                build()
