"""Re-grading stored records (JSONL in, JSONL out), resumable, with any judge.

Each graded record carries a `verdict_id`: a hash of its key, what the judge read, the judge's
name and the judge's code (`esr_utils.provenance`). A verdict made by another judge or other
judge code is never reused: it is graded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from esr_utils.config import check_compute
from esr_utils.jsonl import CorruptFileError, JsonlLog, iter_jsonl, read_jsonl
from esr_utils.judging.types import Judge, JudgeInput
from esr_utils.provenance import describe_changes, digest, verdict_provenance
from esr_utils.results import ResultsStore

__all__ = ["record_key", "read_jsonl", "read_input_records", "regrade_file", "judge_records",
           "judge_stored", "verdict_id", "CorruptFileError"]

_MAX_PROBLEMS = 10


def record_key(record: dict) -> str:
    """`trial_id` when the record has one, else a digest of what the judge reads."""
    if record.get("trial_id"):
        return str(record["trial_id"])
    return _input(record).digest()


def _input(record: dict) -> JudgeInput:
    return JudgeInput(record["prompt"], record["response"], record.get("label") or "")


def _problem(record) -> str | None:
    """What makes a record ungradable, or None."""
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    for field in ("prompt", "response"):
        if field not in record:
            return f"has no {field!r} field (keys: {sorted(record)})"
        if not isinstance(record[field], str):
            return f"has {field!r} = {record[field]!r}, not a string"
    if not record["prompt"].strip():
        return "has an empty 'prompt'"
    if record.get("label") is not None and not isinstance(record["label"], str):
        return f"has 'label' = {record['label']!r}, not a string"
    return None


def read_input_records(path: str | Path) -> list[dict]:
    """Every record of an input file, all checked before any is graded.

    A line that is not a JSON object, lacks `prompt` or `response`, or holds a null or
    non-string one fails here, naming the file and each bad line (the first ten).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    records, problems, unreadable = [], [], []
    for number, record in iter_jsonl(path, errors=unreadable):
        problem = _problem(record)
        if problem:
            problems.append((number, f"{path}:{number} {problem}"))
        records.append(record)
    problems += [(e.line, str(e).split("; fix")[0]) for e in unreadable]
    problems = [text for _, text in sorted(problems)]
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        listed = "\n  ".join(problems[:_MAX_PROBLEMS]) + (f"\n  ... and {more} more" if more > 0
                                                           else "")
        raise ValueError(f"{path} cannot be graded; nothing was sent to the judge. Fix these "
                         f"lines (each needs string fields 'prompt' and 'response'):\n  {listed}")
    return records


def verdict_id(record: dict, provenance: dict) -> str:
    """Id of a verdict: the record's key, what the judge reads, and the judge (code included)."""
    item = _input(record)
    return digest([record_key(record), item.digest(), provenance])[:16]


def judge_records(judge: Judge, records: Iterable[dict], *,
                  batch_dir: str | Path | None = None) -> list[dict]:
    """Copies of `records` with the verdict fields (`attempts`, `judge_error`, `verdict_id`...).

    With `batch_dir`, an LLM judge grades them through its provider's batch API, resumable from
    that folder (`judging.batches`)."""
    records = list(records)
    for r in records:
        problem = _problem(r)
        if problem:
            raise ValueError(f"a record {problem}: it needs string fields 'prompt' and 'response'")
    provenance = verdict_provenance(judge)
    if batch_dir is not None:
        if not hasattr(judge, "client"):
            raise ValueError(f"batch judging needs an LLM judge, not {judge.name}; drop --batch")
        verdicts = judge.judge_many([_input(r) for r in records], batch_dir=batch_dir)
    else:
        verdicts = judge.judge_many([_input(r) for r in records])
    if len(verdicts) != len(records):  # a judge that drops items would lose verdicts silently
        raise RuntimeError(f"{judge.name} returned {len(verdicts)} verdicts for {len(records)} "
                           f"records")
    return [{**r, **v.to_record(), "verdict_id": verdict_id(r, provenance),
             "verdict_provenance": provenance} for r, v in zip(records, verdicts)]


def regrade_file(judge: Judge, in_path: str | Path, out_path: str | Path, *, chunk: int = 16,
                 retry_errors: bool = False, progress: bool = True, batch: bool = False) -> dict:
    """Grade every record of `in_path` not yet in `out_path`, appending as each chunk finishes.

    The whole input is validated first. Verdicts in `out_path` made by another judge or other
    judge code (or, with `retry_errors`, that hold a judge error) are dropped and graded again.
    With `batch`, everything left goes out as provider batches, whose ids are kept next to
    `out_path` so a rerun after a crash resumes them. Returns counts: `total`, `skipped`
    (already graded), `graded`, `errors`, `stale`.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a whole number of records ≥ 1, got {chunk!r}")
    records = read_input_records(in_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    provenance = verdict_provenance(judge)
    log = JsonlLog(out_path, "verdict_id")  # drops a torn last line
    done = log.records()
    current = {verdict_id(r, provenance) for r in records}
    keys = {record_key(r) for r in records}
    # a verdict of one of these records by another judge or other code; others are kept as is
    stale = [r for r in done if r.get("verdict_id") not in current and record_key(r) in keys]
    stale_ids = {id(r) for r in stale}
    keep = [r for r in done if id(r) not in stale_ids
            and not (retry_errors and r.get("judge_error"))]
    if len(keep) != len(done):
        log.rewrite(keep)
    todo, queued = [], set()
    for r in records:
        vid = verdict_id(r, provenance)
        if vid not in log and vid not in queued:
            queued.add(vid)
            todo.append(r)
    bar = tqdm(total=len(records), initial=len(records) - len(todo), unit="record",
               desc=f"regrading ({judge.name})", disable=not progress)
    errors = 0
    if batch:  # one pass: the batch API is the chunking, and its state file the checkpoint
        chunk = max(1, len(todo))
    for start in range(0, len(todo), chunk):
        graded = judge_records(judge, todo[start:start + chunk],
                               batch_dir=out_path.parent if batch else None)
        errors += sum(1 for g in graded if g["judge_error"])
        log.append(graded)
        bar.update(len(graded))
    bar.close()
    return {"total": len(records), "skipped": len(records) - len(todo), "graded": len(todo),
            "errors": errors, "stale": len(stale)}


def judge_stored(judge: Judge, records: Iterable[dict], directory: str | Path, *,
                 compute: str = "allow", name: str = "verdicts", chunk: int = 64) -> list[dict]:
    """Judged copies of `records`, in order, stored in `<directory>/<name>.jsonl` by verdict id.

    Only verdicts missing for this judge and its code are made; with `compute="cache-only"`
    missing ones fail instead, naming what changed when older verdicts of the same records exist.
    """
    check_compute(compute)
    records = list(records)
    store = ResultsStore(directory, name, key="verdict_id")
    provenance = verdict_provenance(judge)
    ids = [verdict_id(r, provenance) for r in records]
    todo, queued = [], set()
    for record, vid in zip(records, ids):
        if store.get(vid) is None and vid not in queued:
            queued.add(vid)
            todo.append(record)
    if todo and compute == "cache-only":
        raise RuntimeError(_missing_verdicts(store, todo, provenance, len(records)))
    for start in range(0, len(todo), chunk):
        store.append(judge_records(judge, todo[start:start + chunk]))
    return [store.get(vid) for vid in ids]


def _missing_verdicts(store: ResultsStore, todo: list[dict], provenance: dict, total: int) -> str:
    older = {record_key(r): r for r in store.records()}
    changes: dict[str, int] = {}
    for record in todo:
        old = older.get(record_key(record))
        if old is not None:
            for change in describe_changes(old.get("verdict_provenance") or {}, provenance):
                changes[change] = changes.get(change, 0) + 1
    why = "; ".join(f"{c} ({n} records)" for c, n in changes.items())
    return (f"COMPUTE='cache-only' but {len(todo)} of {total} records have no verdict of "
            f"{provenance['judge']} in {store.path}" + (f"; stored verdicts are outdated: {why}"
                                                         if why else "")
            + "; rerun with COMPUTE='allow' to judge them")
