"""The `paper-dryrun` profile: the paper profile with only sizes changed, stand-ins that keep each
paper model's class, layers, SAE width and file format, chat templates that behave like the
real ones, and a session that serves the judge from a local stub with fake keys."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from esr_utils import stand_ins
from esr_utils.config import load_profile, notebook_parameters
from esr_utils.models import MODEL_REGISTRY, get_spec, load_model
from esr_utils.prompts import chat_text
from esr_utils.runner import DRY_RUN_KEYS, profile_session, toc_notebooks
from esr_utils.saes.loading import load_sae

PAPER_MODELS = [n for n, s in MODEL_REGISTRY.items() if s.sae.source in {"gemma_scope", "goodfire"}]
# the keys the dry run may change: how many, how long, how big a batch; nothing else
_SIZE_PREFIXES = ("N_",)
_SIZE_SUFFIXES = ("_TOKENS", "_STEPS", "_LATENTS", "_LEVELS", "_PER_LATENT", "_SIZE", "_LEN",
                  "_CHARS", "_CUT", "_CUTS", "_D_SAE")
# how many candidates are drawn; how many answer tokens are steered (a length)
_SIZE_KEYS = {"WINDOW", "CANDIDATE_MULTIPLIER", "STEER_FIRST_K"}


def _is_size(key: str) -> bool:
    return key.startswith(_SIZE_PREFIXES) or key.endswith(_SIZE_SUFFIXES) or key in _SIZE_KEYS


@pytest.fixture
def standing_in(monkeypatch):
    monkeypatch.setenv(stand_ins.ENV_VAR, "1")


def test_the_dry_run_changes_only_sizes_of_the_paper_profile():
    assert load_profile("paper-dryrun")["stand_ins"] and not load_profile("paper")["stand_ins"]
    changed = []
    for stem in toc_notebooks():
        paper, dry = notebook_parameters("paper", stem), notebook_parameters("paper-dryrun", stem)
        assert set(dry) == set(paper), stem
        for key in paper:
            if key == "PROFILE" or dry[key] == paper[key]:
                continue
            # fewer levels of the paper's own list (e.g. two of its boost multiples) is a size
            subset = isinstance(paper[key], list) and set(dry[key]) < set(paper[key])
            assert _is_size(key) or subset, f"{stem}: the dry run changes {key}, not a size"
            changed.append(key)
    assert "N_LATENTS" in changed and "MAX_NEW_TOKENS" in changed


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_each_stand_in_keeps_the_real_class_layers_sae_width_and_file_format(name, standing_in):
    real, spec = MODEL_REGISTRY[name], get_spec(name)
    assert spec.d_model == stand_ins.D_MODEL and spec.d_model != real.d_model
    assert (spec.n_layers, spec.steering_layer, spec.sae) == (real.n_layers,
                                                              real.steering_layer, real.sae)
    model = load_model(name, device="cpu")
    config = model.hf.config
    assert config.num_hidden_layers == real.n_layers and len(model.lm.model.layers) == real.n_layers
    if real.sae.source == "gemma_scope":
        assert type(model.hf).__name__ == "Gemma2ForCausalLM"
        assert config.attn_logit_softcapping == 50.0 and config.final_logit_softcapping == 30.0
        with np.load(stand_ins.sae_file(spec)) as data:
            assert sorted(data.files) == ["b_dec", "b_enc", "threshold", "w_dec", "w_enc"]
    else:
        assert type(model.hf).__name__ == "LlamaForCausalLM"
        assert config.rope_parameters["rope_type"] == "llama3"
        state = torch.load(stand_ins.sae_file(spec), weights_only=True)
        assert state["encoder_linear.weight"].shape == (real.sae.d_sae, stand_ins.D_MODEL)
    sae = load_sae(name)
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (stand_ins.D_MODEL, real.sae.d_sae)


def test_stand_in_chat_templates_behave_like_the_real_ones(standing_in):
    gemma = load_model("gemma-2-2b-it", device="cpu").tokenizer
    llama = load_model("llama-3.1-8b-instruct", device="cpu").tokenizer
    assert chat_text(gemma, "Hi?") == "<bos><start_of_turn>user\nHi?<end_of_turn>\n" \
        "<start_of_turn>model\n"
    with pytest.raises(Exception, match="System role not supported"):
        gemma.apply_chat_template([{"role": "system", "content": "x"},
                                   {"role": "user", "content": "y"}], tokenize=False)
    text = chat_text(llama, "Hi?")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Cutting Knowledge Date: December 2023\n")
    assert text.endswith("Hi?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # like the real tokenizers: BOS added unless asked not to; Llama 3 has no pad token
    for tok in (gemma, llama):
        assert tok("hello")["input_ids"][0] == tok.bos_token_id
        assert tok.bos_token_id not in tok("hello", add_special_tokens=False)["input_ids"]
    # Llama 3 ships without a pad token (nnsight then pads with EOS, as it would the real one)
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(stand_ins.model_dir(get_spec("llama-3.1-8b-instruct")))
    assert saved.pad_token is None and llama.pad_token == llama.eos_token


def test_the_ndif_model_runs_through_nnsights_remote_simulation(standing_in):
    model = load_model("llama-3.3-70b-instruct", backend="remote")
    assert model.remote == "local" and model.device == "cpu"
    with pytest.raises(ValueError, match="is not served by NDIF"):
        load_model("gemma-2-2b-it", backend="remote")


def test_stand_ins_skip_the_weight_checks_but_not_the_judge_key(standing_in, monkeypatch):
    from esr_utils.preflight import PreflightError, preflight

    for name in ("HF_TOKEN", "NDIF_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    spec = get_spec("llama-3.3-70b-instruct")
    preflight(spec, backend="remote", judge="offline")  # no NDIF key, token or GPU needed
    with pytest.raises(PreflightError, match="ANTHROPIC_API_KEY"):
        preflight(spec, backend="remote", judge="anthropic:claude-haiku-4-5-20251001")


def test_a_bad_stand_in_switch_is_named(monkeypatch):
    monkeypatch.setenv(stand_ins.ENV_VAR, "yes")
    with pytest.raises(ValueError, match="ESR_STAND_INS must be 1 or 0"):
        get_spec("gemma-2-2b-it")


def test_the_dry_run_session_serves_the_judge_locally_with_fake_keys_then_restores(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-user's-own")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with profile_session("paper-dryrun") as stub:
        assert os.environ["ANTHROPIC_BASE_URL"] == stub.url
        assert os.environ["ANTHROPIC_API_KEY"] == DRY_RUN_KEYS["ANTHROPIC_API_KEY"]
        assert stand_ins.active()
    assert os.environ["ANTHROPIC_API_KEY"] == "the-user's-own"
    assert "ANTHROPIC_BASE_URL" not in os.environ and not stand_ins.active()
    with profile_session("paper") as nothing:
        assert nothing is None and not stand_ins.active()


def test_a_judge_at_another_address_never_shares_the_apis_cache(monkeypatch):
    """The dry run's stub answers under the paper judge's model name: its grades must not land
    in the cache a real run reads, so the address is part of the judge's identity."""
    from esr_utils.judging.clients import AnthropicClient

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert AnthropicClient("m").judge_id == "anthropic:m"
    assert AnthropicClient("m", base_url="https://api.anthropic.com/").judge_id == "anthropic:m"
    assert AnthropicClient("m", base_url="https://proxy.example/v1").judge_id == \
        "anthropic:m@https://proxy.example/v1"
    # a local server by host alone: the stub on another port grades the same way
    assert AnthropicClient("m", base_url="http://127.0.0.1:9/").judge_id == "anthropic:m@127.0.0.1"


def test_paper_saes_are_labelled_by_their_neuronpedia_descriptions(monkeypatch, tmp_path):
    """Outside the dry run: the cached export under the id sae-lens lists; latents without a
    description get the placeholder and are counted; only described latents are rated."""
    from esr_utils.latent_selection import grade_concreteness, rate_concreteness
    from esr_utils.neuronpedia import NeuronpediaLabels
    from esr_utils.protocol import latent_labels, unlabelled

    monkeypatch.setenv("ESR_CACHE_DIR", str(tmp_path))
    cached = NeuronpediaLabels("gemma-2-2b/16-gemmascope-res-16k", {4: "dogs and puppies"},
                               "recorded", "2026-01-01")
    (tmp_path / "neuronpedia").mkdir()
    (tmp_path / "neuronpedia" / "gemma-2-2b__16-gemmascope-res-16k.json").write_text(
        json.dumps(cached.to_json()))
    spec = get_spec("gemma-2-2b-it")
    label, store = latent_labels(spec)
    assert (label(4), label(6)) == ("dogs and puppies", "SAE latent 6")
    assert unlabelled(spec, [4, 6, 8]) == [6, 8]

    class Rater:
        def complete(self, system, user):
            labels = json.loads(user[user.rfind("["):])
            return json.dumps([{"label": x, "rating": 70} for x in labels])

    monkeypatch.setattr("esr_utils.latent_selection.make_backend", lambda spec: Rater())
    assert rate_concreteness([4, 6], "llm:anthropic:x", store) == {4: 70.0}
    with pytest.raises(ValueError, match="'proxy' reads the embedded SAE"):
        rate_concreteness([4, 6], "proxy", store)
    assert grade_concreteness({1: "a", 2: "b"}, Rater()) == {1: 70.0, 2: 70.0}


def test_the_dry_run_labels_stand_ins_beside_them_never_in_the_real_cache(standing_in):
    from esr_utils.judging.stub_server import hashed_grade
    from esr_utils.latent_selection import grade_concreteness
    from esr_utils.protocol import latent_labels, unlabelled

    spec = get_spec("llama-3.3-70b-instruct")
    label, store = latent_labels(spec)
    assert label(4) == "stand-in concept number 4" and label(3) == "SAE latent 3"
    assert unlabelled(spec, [3, 4, 6]) == [3, 6]
    assert (stand_ins.stand_in_dir(spec.name) / "labels").is_dir()

    class Stub:  # the dry run's stub rates labels too
        def complete(self, system, user):
            return hashed_grade(user)

    ratings = grade_concreteness({1: "a", 2: "b", 4: "c"}, Stub())
    assert sorted(ratings) == [1, 2, 4] and all(0 <= v <= 100 for v in ratings.values())
