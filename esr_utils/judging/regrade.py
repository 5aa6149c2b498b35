"""Re-grading stored records (JSONL in, JSONL out), resumable, with any judge."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from esr_utils.judging.types import Judge, JudgeInput

__all__ = ["record_key", "read_jsonl", "regrade_file", "judge_records"]


def record_key(record: dict) -> str:
    """`trial_id` when the record has one, else a digest of what the judge reads."""
    if record.get("trial_id"):
        return str(record["trial_id"])
    return _input(record).digest()


def _input(record: dict) -> JudgeInput:
    return JudgeInput(str(record["prompt"]), str(record.get("response") or ""),
                      str(record.get("label") or ""))


def read_jsonl(path: str | Path, *, strict: bool = False) -> list[dict]:
    """Records from a JSONL file.

    A line that is not JSON (a write torn by a crash) is skipped, or with `strict` raises a
    `ValueError` naming the line: an input file should have none.
    """
    path = Path(path)
    if not path.exists():
        if strict:
            raise FileNotFoundError(f"no such file: {path}")
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if strict:
                raise ValueError(f"{path}:{number} is not a JSON record ({exc})") from None
    return out


def judge_records(judge: Judge, records: Iterable[dict]) -> list[dict]:
    """Copies of `records` with the verdict fields (`attempts`, `judge_error`, ...) added."""
    records = list(records)
    for r in records:
        if "prompt" not in r or "response" not in r:
            raise KeyError(f"a record needs 'prompt' and 'response', got keys {sorted(r)}")
    verdicts = judge.judge_many([_input(r) for r in records])
    return [{**r, **v.to_record()} for r, v in zip(records, verdicts)]


def regrade_file(judge: Judge, in_path: str | Path, out_path: str | Path, *, chunk: int = 16,
                 retry_errors: bool = False, progress: bool = True) -> dict:
    """Grade every record of `in_path` not yet in `out_path`, appending as each chunk finishes.

    Returns counts: `total`, `skipped` (already graded), `graded`, `errors`.
    """
    records = read_jsonl(in_path, strict=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_jsonl(out_path)
    if retry_errors:
        done = [r for r in done if not r.get("judge_error")]
    # rewrite first: drops a torn last line, and dropped error records when retrying
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in done))
    os.replace(tmp, out_path)
    seen = {record_key(r) for r in done}
    todo, queued = [], set()
    for r in records:
        key = record_key(r)
        if key not in seen and key not in queued:
            queued.add(key)
            todo.append(r)
    bar = tqdm(total=len(records), initial=len(records) - len(todo), unit="record",
               desc=f"regrading ({judge.name})", disable=not progress)
    errors = 0
    for start in range(0, len(todo), chunk):
        graded = judge_records(judge, todo[start:start + chunk])
        errors += sum(1 for g in graded if g["judge_error"])
        with out_path.open("a") as f:
            f.write("".join(json.dumps(g, sort_keys=True) + "\n" for g in graded))
            f.flush()
            os.fsync(f.fileno())
        bar.update(len(graded))
    bar.close()
    return {"total": len(records), "skipped": len(records) - len(todo), "graded": len(todo),
            "errors": errors}
