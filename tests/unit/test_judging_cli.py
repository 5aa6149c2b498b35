"""Re-grading stored records from the command line: fields kept, resumable, errors recorded."""

from __future__ import annotations

import json
import re

import pytest

from esr_utils.judging import Attempt, JudgeInput, Verdict
from esr_utils.judging.__main__ import main
from esr_utils.judging.regrade import read_jsonl, regrade_file


class CountingJudge:
    """A stand-in judge that scores by response length and fails on a marker, counting calls."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def judge(self, item: JudgeInput) -> Verdict:
        self.calls += 1
        if "FAIL" in item.response:
            return Verdict(error="judge call failed: HTTP 500", raw="boom", judge=self.name)
        return Verdict(attempts=(Attempt(item.response, float(len(item.response))),),
                       judge=self.name)

    def judge_many(self, items, *, progress=False):
        return [self.judge(i) for i in items]


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


RECORDS = [{"trial_id": f"t{i}", "prompt": "p", "response": "r" * (i + 1), "label": "L",
            "seed": i} for i in range(5)]


def test_regrade_adds_verdict_fields_and_keeps_the_rest(tmp_path):
    write(tmp_path / "in.jsonl", RECORDS)
    counts = regrade_file(CountingJudge(), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                          progress=False)
    out = read_jsonl(tmp_path / "out.jsonl")
    assert counts == {"total": 5, "skipped": 0, "graded": 5, "errors": 0, "stale": 0}
    assert [r["seed"] for r in out] == list(range(5))
    assert out[2]["attempts"] == [{"text": "rrr", "score": 3.0}] and out[2]["judge_error"] is None


def test_regrade_resumes_after_a_crash_without_regrading(tmp_path):
    """A re-run after an interruption must grade only what is missing, and drop a torn line."""
    write(tmp_path / "in.jsonl", RECORDS)
    first = CountingJudge()
    regrade_file(first, tmp_path / "in.jsonl", tmp_path / "out.jsonl", chunk=2, progress=False)
    lines = (tmp_path / "out.jsonl").read_text().splitlines(keepends=True)
    # keep two finished records and half of the third, as a kill mid-write would
    (tmp_path / "out.jsonl").write_text("".join(lines[:2]) + lines[2][:15])
    second = CountingJudge()
    counts = regrade_file(second, tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    assert second.calls == 3 and counts["skipped"] == 2
    out = read_jsonl(tmp_path / "out.jsonl")
    assert sorted(r["trial_id"] for r in out) == [f"t{i}" for i in range(5)]


def test_judge_errors_are_recorded_and_can_be_retried(tmp_path):
    records = RECORDS[:2] + [{"prompt": "p", "response": "FAIL please", "label": ""}]
    write(tmp_path / "in.jsonl", records)
    counts = regrade_file(CountingJudge(), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                          progress=False)
    out = read_jsonl(tmp_path / "out.jsonl")
    assert counts["errors"] == 1
    failed = [r for r in out if r["judge_error"]]
    assert failed[0]["judge_raw"] == "boom" and failed[0]["attempts"] is None
    judge = CountingJudge()
    regrade_file(judge, tmp_path / "in.jsonl", tmp_path / "out.jsonl", retry_errors=True,
                 progress=False)
    assert judge.calls == 1 and len(read_jsonl(tmp_path / "out.jsonl")) == 3


def test_cli_offline_judge_end_to_end(tmp_path, capsys):
    """`python -m esr_utils.judging --judge offline` grades a self-correction into two attempts."""
    write(tmp_path / "in.jsonl", [{"prompt": "Explain how to make a good cup of coffee.",
                                  "response": "The Eiffel Tower was finished in 1889 for the "
                                  "World's Fair. Wait, that's not right. Grind fresh beans, "
                                  "use water just off the boil, and brew for four minutes.",
                                  "label": "Paris landmarks", "latent_id": 7}])
    assert main(["--judge", "offline", "--in", str(tmp_path / "in.jsonl"),
                 "--out", str(tmp_path / "out.jsonl"), "--quiet"]) == 0
    (record,) = read_jsonl(tmp_path / "out.jsonl")
    assert record["latent_id"] == 7 and record["judge"] == "offline"
    assert len(record["attempts"]) == 2
    assert record["attempts"][1]["score"] > record["attempts"][0]["score"]
    assert "1 graded" in capsys.readouterr().err


def test_cli_missing_key_is_a_clear_error_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    write(tmp_path / "in.jsonl", RECORDS)
    code = main(["--judge", "anthropic:claude-haiku-4-5-20251001", "--in",
                 str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")])
    assert code == 2 and "ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("bad_line, message", [
    ({"response": "x"}, "has no 'prompt' field"),
    ({"prompt": "p"}, "has no 'response' field"),
    ({"prompt": None, "response": "x"}, "has 'prompt' = None, not a string"),
    ({"prompt": "p", "response": None}, "has 'response' = None, not a string"),
    (["p", "r"], "holds a JSON list, not an object"),
    ({"prompt": "p", "response": "r", "label": 3}, "has 'label' = 3"),
])
def test_the_whole_input_is_checked_before_the_first_call(tmp_path, bad_line, message):
    """A bad record at line 41 must not fail after 40 paid calls, nor be graded as 'None'."""
    write(tmp_path / "in.jsonl", RECORDS * 8 + [bad_line] + RECORDS)
    judge = CountingJudge()
    with pytest.raises(ValueError, match=rf"in\.jsonl:41 {re.escape(message)}"):
        regrade_file(judge, tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    assert judge.calls == 0 and not (tmp_path / "out.jsonl").exists()


def test_cli_names_file_and_line_of_every_bad_record(tmp_path, capsys):
    write(tmp_path / "in.jsonl", RECORDS[:2] + [{"response": "x"}])
    with (tmp_path / "in.jsonl").open("a") as f:
        f.write("{not json\n" + json.dumps(RECORDS[0]) + "\n")
    assert main(["--in", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:3 has no 'prompt' field" in err and "in.jsonl:4 is not a JSON record" in err


@pytest.mark.parametrize("chunk", ["-1", "0", "two"])
def test_a_chunk_below_one_is_rejected_with_a_clear_message(tmp_path, capsys, chunk):
    """`--chunk -1` used to print '1 graded' and write nothing; `0` raised a raw range() error."""
    write(tmp_path / "in.jsonl", RECORDS[:1])
    with pytest.raises(SystemExit) as exit_:
        main(["--in", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
              "--chunk", chunk])
    assert exit_.value.code == 2
    assert "--chunk: must be a whole number ≥ 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="chunk must be a whole number of records ≥ 1"):
        regrade_file(CountingJudge(), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                     chunk=int(chunk) if chunk != "two" else 0, progress=False)


def test_verdicts_of_other_judge_code_are_graded_again(tmp_path, monkeypatch):
    """A change to the judge's code must not silently reuse its old verdicts."""
    import esr_utils.judging.regrade as regrade

    write(tmp_path / "in.jsonl", RECORDS[:3])
    regrade_file(CountingJudge(), tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    same = CountingJudge()
    regrade_file(same, tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    assert same.calls == 0
    real = regrade.verdict_provenance
    monkeypatch.setattr(regrade, "verdict_provenance",
                        lambda judge: {**real(judge), "code": {"esr_utils.judging.x": "changed"}})
    changed = CountingJudge()
    counts = regrade_file(changed, tmp_path / "in.jsonl", tmp_path / "out.jsonl", progress=False)
    assert changed.calls == 3 and counts["stale"] == 3
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 3  # the outdated verdicts were replaced


def test_a_malformed_input_line_is_an_error_naming_the_line(tmp_path, capsys):
    """Skipping bad input silently would shrink a run's denominators without anyone noticing."""
    (tmp_path / "in.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{\"prompt\": \"cut off\n")
    assert main(["--in", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")]) == 2
    assert "in.jsonl:2" in capsys.readouterr().err


def test_stored_verdicts_are_reused_only_for_the_same_judge_code(tmp_path, monkeypatch):
    import esr_utils.judging.regrade as regrade
    from esr_utils.judging.regrade import judge_stored

    first = judge_stored(CountingJudge(), RECORDS, tmp_path)
    again = CountingJudge()
    assert judge_stored(again, RECORDS, tmp_path, compute="cache-only") == first
    assert again.calls == 0
    real = regrade.verdict_provenance
    monkeypatch.setattr(regrade, "verdict_provenance", lambda judge: {
        **real(judge), "code": {**real(judge)["code"], "esr_utils.judging.parsing": "f" * 16}})
    with pytest.raises(RuntimeError, match=r"5 of 5 records have no verdict of counting .*"
                                           r"module esr_utils\.judging\.parsing is new"):
        judge_stored(CountingJudge(), RECORDS, tmp_path, compute="cache-only")
    changed = CountingJudge()
    judge_stored(changed, RECORDS, tmp_path)
    assert changed.calls == 5


def test_cli_batch_mode_is_killed_mid_poll_then_resumes_the_same_batch(tmp_path, monkeypatch):
    """`--batch` against the local stub: killed while polling, the rerun resumes the recorded
    batch (one submission in all) and every record gets exactly one verdict."""
    from esr_utils.judging import batches
    from esr_utils.judging.stub_server import JudgeStub

    class Killed(Exception):
        pass

    def kill(_seconds):
        raise Killed

    records = [{"prompt": f"Q{i}?", "response": f"A{i}. Wait, no. B{i}.", "label": "x"}
               for i in range(5)]
    write(tmp_path / "in.jsonl", records)
    argv = ["--judge", "anthropic:stub-cli", "--in", str(tmp_path / "in.jsonl"),
            "--out", str(tmp_path / "out" / "verdicts.jsonl"), "--batch", "--no-cache", "--quiet"]
    with JudgeStub(batch_polls=2) as stub:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-FAKE-cli")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setattr(batches.time, "sleep", kill)
        with pytest.raises(Killed):
            main(argv)
        assert (tmp_path / "out" / batches.STATE_FILE).exists()
        monkeypatch.setattr(batches.time, "sleep", lambda s: None)
        assert main(argv) == 0
    out = read_jsonl(tmp_path / "out" / "verdicts.jsonl")
    assert sorted(r["prompt"] for r in out) == [f"Q{i}?" for i in range(5)]
    assert all(not r["judge_error"] and len(r["attempts"]) == 2 for r in out)
    assert len(stub.batches) == 1 and ("POST", "/v1/messages") not in stub.requests
