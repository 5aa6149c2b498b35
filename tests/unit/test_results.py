"""The results store: append-only, no duplicates; run cards record what produced a result."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

import esr_utils
from esr_utils.results import ResultsStore, write_run_card


def test_append_skips_trials_already_stored(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([{"trial_id": "a", "x": 1}, {"trial_id": "b", "x": 2}])
    store.append([{"trial_id": "b", "x": 99}, {"trial_id": "c", "x": 3}])
    assert [r["trial_id"] for r in store.records()] == ["a", "b", "c"]
    assert store.records()[1]["x"] == 2  # the first write wins: lines are never rewritten


def test_record_without_id_is_refused(tmp_path):
    with pytest.raises(KeyError, match="trial_id"):
        ResultsStore(tmp_path).append([{"x": 1}])


def test_run_card_records_config_versions_and_timings(tmp_path):
    path = write_run_card(tmp_path, {"seed": 3}, {"generate_s": 1.5})
    card = json.loads(path.read_text())
    assert card["config"] == {"seed": 3}
    assert card["timings_s"] == {"generate_s": 1.5}
    # the card records what is installed, whatever that is
    assert card["versions"]["torch"] == metadata.version("torch")
    assert card["versions"]["esr_utils"] == esr_utils.__version__
    assert len(card["git"]) >= 7 or card["git"] == "unknown"


def test_run_card_counts_the_llm_judge_calls_of_this_process(tmp_path):
    from esr_utils.judging.clients import count

    count("openai:test-model@http://127.0.0.1:9", calls=2, retries=3, http_429=2, timeout=1, ok=2)
    card = json.loads(write_run_card(tmp_path, {}).read_text())
    counts = card["judge_calls"]["openai:test-model@http://127.0.0.1:9"]
    assert counts == {"calls": 2, "http_429": 2, "ok": 2, "retries": 3, "timeout": 1}


def test_store_keys_and_reopening(tmp_path):
    store = ResultsStore(tmp_path, "judged", key="verdict_id")
    store.append([{"verdict_id": "v1", "trial_id": "a"}, {"verdict_id": "v2", "trial_id": "a"}])
    reopened = ResultsStore(tmp_path, "judged", key="verdict_id")
    assert reopened.done_ids() == {"v1", "v2"} and reopened.get("v2")["trial_id"] == "a"
