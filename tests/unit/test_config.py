"""Run configs: validation, round trips, stable keys; profiles and the runner's chapter list."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

import esr_utils.config
from esr_utils.config import (
    RunConfig,
    check_compute,
    check_parameters,
    load_profile,
    notebook_parameters,
)
from esr_utils.paths import PROFILES_DIR
from esr_utils.runner import main as runner_main
from esr_utils.runner import toc_notebooks


def _cfg(**changes):
    base = dict(notebook="01_steering_setup", profile="cpu", seed=3, params={"N_PROMPTS": 5})
    return RunConfig(**{**base, **changes})


def test_round_trip():
    cfg = _cfg()
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.n_prompts == 5  # notebook parameters read as lower-case attributes


def test_key_changes_with_results_relevant_fields_only():
    """Different results must never share a folder; cosmetic changes must not split them."""
    key = _cfg().key()
    assert _cfg(seed=4).key() != key
    assert _cfg(params={"N_PROMPTS": 6}).key() != key
    assert _cfg(model="gemma-2-2b-it").key() != key
    assert _cfg(device="cuda").key() == key
    assert _cfg(compute="cache-only").key() == key
    assert _cfg().key() == key


def test_config_is_frozen():
    cfg = _cfg()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 9
    with pytest.raises(TypeError):
        cfg.params["n_prompts"] = 1


@pytest.mark.parametrize("field,value,message", [
    ("profile", "gpu", "PROFILE must be one of"),
    ("backend", "ndif", "BACKEND must be 'local' or 'remote'"),
    ("compute", "never", "COMPUTE must be one of"),
    ("compute", "cache_only", r"COMPUTE must be one of \('allow', 'cache-only'\), got "
                              r"'cache_only' \(did you mean 'cache-only'\?\)"),
    ("seed", "0", "SEED must be an int"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        _cfg(**{field: value})


def test_unknown_parameter_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no field or parameter 'n_latents'"):
        _ = _cfg().n_latents


def test_profiles_merge_shared_then_notebook_keys():
    params = notebook_parameters("smoke", "01_steering_setup")
    assert params["PROFILE"] == "smoke"
    assert params["MODEL"] == load_profile("smoke")["shared"]["MODEL"]
    assert params["MAX_NEW_TOKENS"] == load_profile("smoke")["notebooks"]["01_steering_setup"][
        "MAX_NEW_TOKENS"]


def test_runner_reads_chapters_from_the_toc(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: intro\nparts:\n  - chapters:\n"
                   "      - file: notebooks/01_steering_setup\n      - file: glossary\n")
    assert toc_notebooks(toc) == ["01_steering_setup"]
    toc.write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/99_missing\n")
    with pytest.raises(FileNotFoundError, match="99_missing"):
        toc_notebooks(toc)


def test_each_chapter_is_reported_as_it_finishes_and_others_are_kept(tmp_path, monkeypatch):
    """A run of one chapter (`--only`), or one that stopped half-way, keeps the other chapters'
    latest times for the benchmark appendix."""
    import json

    from esr_utils import execution_report, runner

    seconds = iter([12.0, 34.0])

    def fake_execute(stem, profile, **kw):
        if stem == "02_esr_across_models":
            raise RuntimeError("killed")
        return next(seconds)

    monkeypatch.setattr(execution_report, "REPORT_DIR", tmp_path)
    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    assert runner.main(["--profile", "smoke", "--only", "01_steering_setup",
                        "02_esr_across_models", "--skip-preflight"]) == 1
    assert runner.main(["--profile", "smoke", "--only", "A2_judges", "--skip-preflight"]) == 0
    report = json.loads((tmp_path / "execution_report_smoke.json").read_text())
    assert report["01_steering_setup"]["seconds"] == 12.0
    assert report["02_esr_across_models"]["status"] == "failed"
    assert "killed" in report["02_esr_across_models"]["error"]
    assert report["A2_judges"]["seconds"] == 34.0
    assert all(entry["git"] and entry["finished_at"] for entry in report.values())


def test_a_whole_book_run_records_its_wall_time_and_the_machine_speed(tmp_path, monkeypatch):
    """Side by side (`--jobs`), the chapters' times add up to more than the book's wall time, so
    a run of every chapter records that wall time too; a run of some chapters does not."""
    import json

    from esr_utils import execution_report, runner

    monkeypatch.setattr(execution_report, "REPORT_DIR", tmp_path)
    monkeypatch.setattr(runner, "execute_notebook", lambda stem, profile, **kw: 1.0)
    monkeypatch.setattr(runner, "matmul_peak_gflops", lambda: 123.456)
    assert runner.main(["--profile", "smoke", "--only", "A2_judges", "--skip-preflight"]) == 0
    path = tmp_path / "execution_report_smoke.json"
    assert execution_report.WHOLE_BOOK not in json.loads(path.read_text())
    assert runner.main(["--profile", "smoke", "--skip-preflight"]) == 0
    entry = json.loads(path.read_text())[execution_report.WHOLE_BOOK]
    assert entry["status"] == "ok" and entry["jobs"] == 1
    assert entry["matmul_peak_gflops"] == 123.5 and 0 <= entry["seconds"] < 60


@pytest.mark.parametrize("latent_id, message", [
    (99999, r"LATENT_ID 99999 is out of range for smollm2-135m-instruct's SAE, which has 2304 "
            r"latents: use an id in 0\.\.2303"),
    (-1, "LATENT_ID -1 is out of range"),
    (True, "LATENT_ID must be an int"),
])
def test_latent_id_is_checked_against_the_registry_before_loading(latent_id, message):
    """A negative id would index from the end; a huge one failed after 20 s of loading."""
    with pytest.raises(ValueError, match=message):
        _cfg(params={"LATENT_ID": latent_id})
    assert _cfg(params={"LATENT_ID": 2303}).latent_id == 2303


def test_compute_is_checked_wherever_it_is_passed():
    assert check_compute("cache-only") == "cache-only"
    with pytest.raises(ValueError, match="did you mean 'cache-only'"):
        check_compute("cache_only")


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """Editable copies of the profiles, read instead of the package's."""
    for path in PROFILES_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(esr_utils.config, "PROFILES_DIR", tmp_path)
    return tmp_path


def test_shipped_profiles_pass_the_check():
    for profile in ("smoke", "cpu", "paper"):
        for stem in toc_notebooks():
            check_parameters(profile, stem)


def test_misspelt_profile_key_names_file_and_nearest_parameter(profiles, capsys):
    """papermill only warns about an unknown parameter, and the run used the default."""
    text = (profiles / "smoke.yaml").read_text()
    (profiles / "smoke.yaml").write_text(text.replace("    MAX_NEW_TOKENS: 16\n    CALIB",
                                                      "    MAX_NEW_TOKEN: 16\n    CALIB"))
    with pytest.raises(ValueError, match=r"smoke\.yaml .*MAX_NEW_TOKEN is not a parameter of "
                                         r"02_esr_across_models \(did you mean 'MAX_NEW_TOKENS'"):
        check_parameters("smoke", "02_esr_across_models")
    assert runner_main(["--profile", "smoke", "--only", "02_esr_across_models"]) == 2
    assert "MAX_NEW_TOKEN is not a parameter" in capsys.readouterr().err


@pytest.mark.parametrize("old, new, message", [
    ("N_LATENTS: 3", "N_LATENTS: three",
     "N_LATENTS must be of type int like its default [0-9]+, got .three."),
    ("LATENT_ID: 1468", "LATENT_ID: 99999", "LATENT_ID 99999 is out of range"),
    ("LATENT_ID: 1468", "LATENT_ID: 2040.0", "LATENT_ID must be of type int"),
    ("COMPUTE: allow", "COMPUTE: cache_only", "did you mean 'cache-only'"),
])
def test_profile_values_are_checked_before_execution(profiles, old, new, message):
    text = (profiles / "smoke.yaml").read_text()
    assert old in text
    (profiles / "smoke.yaml").write_text(text.replace(old, new, 1))
    stem = "02_esr_across_models" if "LATENTS" in old else "01_steering_setup"
    with pytest.raises(ValueError, match=rf"smoke\.yaml .*{message}"):
        check_parameters("smoke", stem)


def test_malformed_yaml_names_the_profile_file(profiles):
    (profiles / "cpu.yaml").write_text("shared:\n  MODEL: [unclosed\n")
    with pytest.raises(ValueError, match=r"profile file .*cpu\.yaml is not valid YAML"):
        load_profile("cpu")
