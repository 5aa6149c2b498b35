"""JSONL persistence: torn last lines repaired, corruption elsewhere named, appends incremental."""

from __future__ import annotations

import json

import pytest

from esr_utils.jsonl import CorruptFileError, JsonlLog, read_json_file, read_jsonl
from esr_utils.results import ResultsStore


def _lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_torn_last_line_is_dropped_with_a_warning_and_the_file_repaired(tmp_path):
    path = tmp_path / "t.jsonl"
    _lines(path, [{"k": "a"}, {"k": "b"}])
    path.write_bytes(path.read_bytes() + b'{"k": "c", "te')
    with pytest.warns(UserWarning, match="torn last line"):
        log = JsonlLog(path, "k")
    assert [r["k"] for r in log.records()] == ["a", "b"]
    assert path.read_bytes().endswith(b"\n")  # repaired, so the next append starts a clean line
    log.append([{"k": "c"}])
    assert [r["k"] for r in read_jsonl(path)] == ["a", "b", "c"]


@pytest.mark.parametrize("bad", [b'{"k": "b", "x', b"[1, 2]", b"null", b"\xff\xfe"])
def test_a_bad_line_in_the_middle_names_file_line_and_fix(tmp_path, bad):
    """Corruption mid-file is not a crash's doing: never drop or mix in such a record."""
    path = tmp_path / "trials.jsonl"
    path.write_bytes(b'{"k": "a", "trial_id": "a"}\n' + bad + b'\n{"k": "c", "trial_id": "c"}\n')
    with pytest.raises(CorruptFileError, match=r"trials\.jsonl:2 .*fix: delete or correct line 2"):
        JsonlLog(path, "k")
    with pytest.raises(CorruptFileError, match=r"trials\.jsonl:2"):
        ResultsStore(tmp_path)


def test_appends_read_only_the_new_lines(tmp_path):
    """The store must not re-read its file on every append (quadratic over a long run): after
    the first line is garbled in place (same size), appends still work, so it was not re-read."""
    path = tmp_path / "t.jsonl"
    log = JsonlLog(path, "k")
    log.append([{"k": str(i)} for i in range(100)])
    data = path.read_bytes()
    first = data.index(b"\n")
    path.write_bytes(b"#" * first + data[first:])
    for i in range(100, 110):
        log.append([{"k": str(i)}])
    assert len(log) == 110 and "105" in log and log.get("0") == {"k": "0"}
    with pytest.raises(CorruptFileError, match=":1 "):  # a fresh open reads it all, and sees it
        JsonlLog(path, "k")


def test_duplicate_keys_are_skipped_and_lines_written_by_others_are_seen(tmp_path):
    path = tmp_path / "t.jsonl"
    log = JsonlLog(path, "k")
    assert [r["k"] for r in log.append([{"k": "a"}, {"k": "a"}, {"k": "b"}])] == ["a", "b"]
    other = JsonlLog(path, "k")
    other.append([{"k": "c"}])
    assert log.append([{"k": "c", "x": 1}]) == [] and log.get("c") == {"k": "c"}


def test_a_stored_record_without_its_key_is_named(tmp_path):
    (tmp_path / "trials.jsonl").write_text('{"trial_id": "a"}\n{"x": 1}\n')
    with pytest.raises(CorruptFileError, match=r"trials\.jsonl:2 has no 'trial_id'"):
        ResultsStore(tmp_path)


def test_an_unparsable_json_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text('{"sha256": {')
    with pytest.raises(CorruptFileError, match=r"manifest\.json is not a valid SAE manifest"):
        read_json_file(path, "SAE manifest")


def test_a_read_only_results_folder_fails_when_the_store_opens(tmp_path):
    """Detected before any generation, not after the first batch (root ignores chmod, so the
    unwritable folder is one under /proc, which nobody can write)."""
    with pytest.raises(PermissionError, match="cannot write results in /proc/esr_results"):
        ResultsStore("/proc/esr_results")
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "trials.jsonl").write_text("")
    folder.chmod(0o500)
    (folder / "trials.jsonl").chmod(0o400)
    try:
        import os

        if os.geteuid() != 0:
            with pytest.raises(PermissionError, match="make it writable"):
                ResultsStore(folder)
    finally:
        folder.chmod(0o700)
