"""Preflight: each missing credential or resource is reported with its fix, before any work."""

import pytest

from esr_utils import preflight as pf
from esr_utils.models import get_spec


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "NDIF_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pf, "_hf_token", lambda: None)
    monkeypatch.setattr(pf, "_ndif_key", lambda: None)
    monkeypatch.chdir(tmp_path)  # no .env file to find keys in


def test_embedded_model_needs_nothing(no_credentials):
    pf.preflight(get_spec("smollm2-135m-instruct"), judge="offline")


def test_remote_run_lists_every_missing_key_at_once(no_credentials):
    with pytest.raises(pf.PreflightError) as err:
        pf.preflight(get_spec("llama-3.3-70b-instruct"), backend="remote",
                     judge="anthropic", check_ndif_status=False)
    text = str(err.value)
    assert "3 problem(s)" in text
    for fix in ("NDIF_API_KEY", "HF_TOKEN", "ANTHROPIC_API_KEY"):
        assert fix in text


def test_local_gated_model_without_gpu_names_token_and_gpu(no_credentials, tmp_path):
    with pytest.raises(pf.PreflightError) as err:
        pf.preflight(get_spec("gemma-2-9b-it"), device="cpu", hf_cache=tmp_path)
    text = str(err.value)
    assert "HF_TOKEN" in text and "GPU" in text and "gemma-2-9b-it" in text


def test_disk_space_is_checked(no_credentials, monkeypatch, tmp_path):
    monkeypatch.setattr(pf, "_hf_token", lambda: "hf_fake")
    monkeypatch.setattr(pf, "_gpu_problem", lambda *a: None)
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda p: type("U", (), {"free": 5e9})())
    with pytest.raises(pf.PreflightError, match="about 18 GB") as err:
        pf.preflight(get_spec("llama-3.1-8b-instruct"), hf_cache=tmp_path)
    assert "HF_HOME" in str(err.value)


def test_ndif_status_failure_is_a_problem_not_a_crash(no_credentials, monkeypatch):
    monkeypatch.setattr(pf, "_hf_token", lambda: "hf_fake")
    monkeypatch.setattr(pf, "_ndif_key", lambda: "ndif_fake")
    import nnsight

    def offline(repo):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(nnsight, "is_model_running", offline, raising=False)
    with pytest.raises(pf.PreflightError, match="could not ask NDIF"):
        pf.preflight(get_spec("llama-3.3-70b-instruct"), backend="remote")


def test_weights_size_from_the_registry():
    assert pf.weights_gb(get_spec("llama-3.3-70b-instruct")) == pytest.approx(141.2)
    assert pf.weights_gb(get_spec("smollm2-135m-instruct"), "float32") == pytest.approx(0.54)


def test_estimate_is_an_upper_bound_with_stated_price():
    est = pf.estimate_run(trials=1000, max_new_tokens=512, tokens_per_second=2000,
                          judge_prompt_tokens=900, judge_output_tokens=250,
                          price_in_per_mtok=1.0, price_out_per_mtok=5.0)
    assert est.generated_tokens == 512_000
    assert est.judge_input_tokens == 1000 * (900 + 512)
    assert est.judge_cost_usd == pytest.approx((1_412_000 * 1.0 + 250_000 * 5.0) / 1e6)
    assert est.generation_hours == pytest.approx(512_000 / 2000 / 3600)
    assert "unknown" in str(pf.estimate_run(trials=10, max_new_tokens=8))


def test_estimate_rejects_nonsense():
    with pytest.raises(ValueError, match="max_new_tokens"):
        pf.estimate_run(trials=10, max_new_tokens=0)


def test_the_paper_profile_page_states_the_registry_sizes():
    """One source for model sizes: the book page's weights column matches the registry."""
    import re

    from esr_utils.paths import BOOK_DIR

    page = (BOOK_DIR / "running_the_paper_profile.md").read_text()
    names = {"Gemma-2-2B-it": "gemma-2-2b-it", "Gemma-2-9B-it": "gemma-2-9b-it",
             "Gemma-2-27B-it": "gemma-2-27b-it", "Llama-3.1-8B-Instruct": "llama-3.1-8b-instruct",
             "Llama-3.3-70B-Instruct": "llama-3.3-70b-instruct"}
    for shown, name in names.items():
        row = re.search(rf"^\| {re.escape(shown)} \|.*?\| ([\d.]+) GB \|", page, flags=re.M)
        assert row, shown
        assert float(row[1]) == pytest.approx(pf.weights_gb(get_spec(name)), abs=0.06)


def test_runner_preflights_every_chapter_before_running(no_credentials, monkeypatch):
    """Under `paper`, a missing key stops the runner before any notebook starts."""
    from esr_utils import runner

    started = []
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: started.append(a))
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda p: type("U", (), {"free": 1e12})())
    assert runner.main(["--profile", "paper"]) == 2
    assert started == []
    runner.preflight_chapters("cpu", runner.toc_notebooks())  # the embedded model needs nothing


def test_every_llm_a_run_calls_is_checked_once(no_credentials):
    with pytest.raises(pf.PreflightError) as err:
        pf.preflight(get_spec("smollm2-135m-instruct"),
                     judge=["offline", "anthropic:claude-haiku-4-5-20251001",
                            "anthropic:claude-sonnet-4-5",
                            "openai:gpt-4o-mini@https://api.openai.com/v1"])
    text = str(err.value)
    assert "3 problem(s)" in text  # one per LLM that lacks its key; none for the offline judge
    assert "ANTHROPIC_API_KEY" in text and "OPENAI_API_KEY" in text


def test_the_runner_reports_every_model_of_every_chapter_in_one_error(no_credentials,
                                                                      monkeypatch):
    from esr_utils import runner

    monkeypatch.setattr(pf.shutil, "disk_usage", lambda p: type("U", (), {"free": 1e12})())
    monkeypatch.setattr(pf, "_gpu_problem", lambda *a: None)
    with pytest.raises(pf.PreflightError) as err:
        runner.preflight_chapters("paper", runner.toc_notebooks())
    text = str(err.value)
    for name in ("gemma-2-2b-it", "llama-3.1-8b-instruct", "llama-3.3-70b-instruct"):
        assert f"{name} (" in text
    assert text.count("llama-3.3-70b-instruct (remote)") == 1
