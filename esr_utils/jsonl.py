"""JSON Lines files: reading that tells a torn last line from corruption, and durable appends.

A crash can tear only the line being written, which is the last one and has no newline yet:
`JsonlLog` drops it on open with a warning, so the record is simply produced again. A bad line
anywhere else is corruption (an edit, a disk fault, two writers), never a crash: it raises
`CorruptFileError` naming the file, the line and the fix, and such a record is never mixed in.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["CorruptFileError", "JsonlLog", "read_jsonl", "iter_jsonl", "read_json_file",
           "check_writable"]


class CorruptFileError(ValueError):
    """A file that cannot be read as what it should be; the message names file, line and fix."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def _fix(path: Path, number: int) -> str:
    return (f"fix: delete or correct line {number} (e.g. `sed -i '{number}d' {path}`), or move "
            f"the file away to produce its records again")


def _parse(path: Path, number: int, line: bytes) -> dict:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path}:{number} is not a JSON record ({exc}); "
                               f"{_fix(path, number)}", number) from None
    if not isinstance(value, dict):
        raise CorruptFileError(f"{path}:{number} holds a JSON {type(value).__name__}, not an "
                               f"object (one record per line); {_fix(path, number)}", number)
    return value


def iter_jsonl(path: str | Path, *, allow_torn_tail: bool = False,
               errors: list | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line; raises `CorruptFileError` on a bad line,
    or, given an `errors` list, appends the error there and goes on (to report them all).

    With `allow_torn_tail`, a last line without its newline that does not parse is skipped (the
    caller repairs the file); otherwise it is an error like any other.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1] if data and not data.endswith(b"\n") else None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if torn is not None and number == len(lines) and allow_torn_tail:
            try:
                yield number, _parse(path, number, line)
            except CorruptFileError:
                return
            continue
        try:
            record = _parse(path, number, line)
        except CorruptFileError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        yield number, record


def read_jsonl(path: str | Path, *, missing_ok: bool = True) -> list[dict]:
    """Every record of a JSONL file that should be whole (e.g. an input file)."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise FileNotFoundError(f"no such file: {path}")
    return [record for _, record in iter_jsonl(path)]


def read_json_file(path: str | Path, what: str = "JSON file", fix: str = "") -> Any:
    """One JSON document (e.g. an SAE's `manifest.json`), or an error naming the file and fix."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        hint = fix or f"restore it (e.g. `git checkout -- {path}`) or regenerate it"
        raise CorruptFileError(f"{path} is not a valid {what} ({exc}); {hint}") from None


def check_writable(directory: str | Path, file: str | Path | None = None) -> None:
    """Fail now, naming the folder, if results could not be written there later."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # opening for append is the real test (permissions, read-only mounts, root included)
        with open(file if file is not None else directory / ".write_check", "ab"):
            pass
        if file is None:
            (directory / ".write_check").unlink()
    except OSError as exc:
        raise PermissionError(
            f"cannot write results in {directory} ({exc.strerror or exc}); make it writable "
            f"(e.g. `chmod u+w {directory}`) or point ESR_RESULTS_DIR at a writable folder"
        ) from None


class JsonlLog:
    """An append-only JSONL file of records, indexed in memory by `key` (a field name or function).

    Opening reads the file once (dropping a torn last line); appends skip records whose key is
    already stored and write only the new lines, each batch flushed and fsynced. Lines another
    writer appended since are read incrementally, never the whole file again.
    """

    def __init__(self, path: str | Path, key: str | Callable[[dict], str] | None = None, *,
                 repair: bool = True):
        self.path = Path(path)
        self._key = (lambda r: r[key]) if isinstance(key, str) else key
        self._key_name = key if isinstance(key, str) else None
        self._records: list[dict] = []
        self._index: dict[str, dict] = {}
        self._offset = 0
        self._lines = 0
        if repair:
            self._repair()
        self._refresh()

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        warnings.warn(f"dropping a torn last line {data[cut:][:60]!r} from {self.path} (an "
                      f"interrupted write); its record will be produced again", stacklevel=3)
        os.truncate(self.path, cut)

    def _refresh(self) -> None:
        """Read lines appended since the last read (all of them if the file shrank)."""
        if not self.path.exists():
            if self._offset:
                self._records, self._index, self._offset, self._lines = [], {}, 0, 0
            return
        size = self.path.stat().st_size
        if size < self._offset:
            self._records, self._index, self._offset, self._lines = [], {}, 0, 0
        if size == self._offset:
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        for line in chunk[:end].split(b"\n")[:-1]:
            self._lines += 1
            if line.strip():
                record = _parse(self.path, self._lines, line)
                if self._key is not None:
                    try:
                        self._key(record)
                    except KeyError:
                        raise CorruptFileError(
                            f"{self.path}:{self._lines} has no {self._key_name or 'key'!r}; "
                            f"{_fix(self.path, self._lines)}", self._lines) from None
                self._add(record)
        self._offset += end

    def _add(self, record: dict) -> None:
        self._records.append(record)
        if self._key is not None:
            self._index.setdefault(self._key(record), record)

    def records(self) -> list[dict]:
        self._refresh()
        return list(self._records)

    def get(self, key: str) -> dict | None:
        self._refresh()
        return self._index.get(key)

    def keys(self) -> set[str]:
        self._refresh()
        return set(self._index)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    def append(self, records: Iterable[dict], *, dedupe: bool = True) -> list[dict]:
        """Write `records` (minus those whose key is stored, when `dedupe`); returns those
        written."""
        self._refresh()
        new, seen = [], set()
        for record in records:
            if self._key is not None:
                try:
                    key = self._key(record)
                except KeyError:
                    raise KeyError(f"every record needs a {self._key_name or 'key'!r}") from None
                if dedupe and (key in self._index or key in seen):
                    continue
                seen.add(key)
            new.append(record)
        if not new:
            return []
        blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in new).encode()
        with self.path.open("ab") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        self._refresh()
        return new

    def rewrite(self, records: Iterable[dict]) -> None:
        """Replace the whole file atomically (e.g. to drop records graded with an error)."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        os.replace(tmp, self.path)
        self._records, self._index, self._offset, self._lines = [], {}, 0, 0
        self._refresh()
