"""Run configs: validation, round trips, stable keys; profiles and the runner's chapter list."""

from __future__ import annotations

import pytest

from esr_utils.config import RunConfig, load_profile, notebook_parameters
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
    with pytest.raises(Exception):
        cfg.seed = 9
    with pytest.raises(TypeError):
        cfg.params["n_prompts"] = 1


@pytest.mark.parametrize("field,value,message", [
    ("profile", "gpu", "PROFILE must be one of"),
    ("backend", "ndif", "BACKEND must be 'local' or 'remote'"),
    ("compute", "never", "COMPUTE must be one of"),
    ("seed", "0", "SEED must be an int"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        _cfg(**{field: value})


def test_unknown_parameter_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no field or parameter 'n_latents'"):
        _cfg().n_latents


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
