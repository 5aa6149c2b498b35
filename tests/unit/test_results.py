"""The results store: append-only, no duplicates; run cards record what produced a result."""

from __future__ import annotations

import json

import pytest

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
    assert card["versions"]["torch"].startswith("2.13")
    assert card["versions"]["esr_utils"] == "0.1.0"
