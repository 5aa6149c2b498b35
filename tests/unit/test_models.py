"""The model registry's paper settings, and loading paths up to the network boundary."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from esr_utils.generation import Sampling, Trial, generate_trials, tokenize_chats
from esr_utils.models import EMBEDDED_MODEL, MODEL_REGISTRY, backend_for, get_spec, load_model
from esr_utils.residual import residual_norms
from esr_utils.steering import Steering

# the paper's Table 1 (models, SAEs, layers); the calibration priors are the authors' experiment
# configs (book appendix "Differences from the paper and its code")
PAPER = {
    "gemma-2-2b-it": (26, 16, "gemma-scope-2b-pt-res-canonical", (150.0, 75.0)),
    "gemma-2-9b-it": (42, 26, "gemma-scope-9b-pt-res-canonical", (280.0, 280.0)),
    "gemma-2-27b-it": (46, 22, "gemma-scope-27b-pt-res-canonical", (1500.0, 1500.0)),
    "llama-3.1-8b-instruct": (32, 19, "goodfire-llama-3.1-8b-instruct", (10.0, 10.0)),
    "llama-3.3-70b-instruct": (80, 33, "goodfire-llama-3.3-70b-instruct", (7.0, 5.0)),
}


@pytest.mark.parametrize("name", PAPER)
def test_registry_matches_the_paper(name):
    n_layers, layer, release, prior = PAPER[name]
    spec = get_spec(name)
    assert (spec.n_layers, spec.steering_layer, spec.sae.release, spec.threshold_prior) == (
        n_layers, layer, release, prior)
    assert spec.temperature == 0.6 and spec.max_new_tokens == 512
    assert spec.calibration_max_new_tokens == 256


def test_70b_steers_at_33_with_the_layer_50_sae():
    spec = get_spec("llama-3.3-70b-instruct")
    assert spec.steering_layer == 33 and spec.sae.layer == 50


def test_embedded_model_is_steered_at_sixty_percent_depth():
    spec = get_spec(EMBEDDED_MODEL)
    assert spec.depth == pytest.approx(0.6)
    assert get_spec("smollm2") is spec


def test_layer_check_names_the_range():
    with pytest.raises(ValueError, match=r"layers 0\.\.29"):
        get_spec(EMBEDDED_MODEL).check_layer(30)


class _GgufRead(Exception):
    """Raised by the spy when anything asks transformers to read the GGUF."""


@pytest.fixture
def gguf_spy(monkeypatch):
    """Record every transformers load; a load from the GGUF (dequantizing it) raises `_GgufRead`."""
    import transformers

    calls = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = cls.from_pretrained

        def spy(source, *args, _original=original, _cls=cls.__name__, **kwargs):
            calls.append((_cls, str(source), kwargs.get("gguf_file")))
            if kwargs.get("gguf_file"):
                raise _GgufRead(f"{_cls} read {kwargs['gguf_file']}")
            return _original(source, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    return calls


def test_second_load_of_the_embedded_model_uses_the_dense_cache(gguf_spy):
    """With the cache built, the GGUF is never read: both loads come from the cached folder."""
    from esr_utils.embedded_weights import dense_cache_for, embedded_dense_dir, embedded_gguf_path

    cached = dense_cache_for(embedded_gguf_path())
    embedded_dense_dir()  # builds the cache if this machine has none yet (not spied on below)
    gguf_spy.clear()
    model = load_model(EMBEDDED_MODEL, device="cpu")
    assert model.hf.config.num_hidden_layers == 30
    assert [(c, src, g) for c, src, g in gguf_spy] == [
        ("AutoTokenizer", str(cached), None), ("AutoModelForCausalLM", str(cached), None)]


def test_without_the_dense_cache_the_gguf_is_read(gguf_spy, tmp_path, monkeypatch):
    """The spy above can fail: with an empty cache, loading goes to the GGUF."""
    monkeypatch.setenv("ESR_CACHE_DIR", str(tmp_path))
    with pytest.raises(_GgufRead, match=r"\.gguf"):
        load_model(EMBEDDED_MODEL, device="cpu")
    assert gguf_spy and gguf_spy[0][2] is not None


def test_remote_backend_builds_a_weightless_client(tiny_model_dir, tiny_spec):
    """The NDIF path up to the network: a meta-device model from the config, no weights."""
    hosted = dataclasses.replace(tiny_spec, ndif_hosted=True)
    client = load_model(hosted, backend="remote", path=tiny_model_dir)
    assert client.remote is True and client.device == "remote"
    assert next(client.hf.parameters()).device.type == "meta"


def test_embedded_model_cannot_run_remotely():
    with pytest.raises(ValueError, match="is not served by NDIF"):
        load_model(EMBEDDED_MODEL, backend="remote")


def test_backend_for_sends_only_hosted_models_to_ndif():
    assert backend_for(get_spec("llama-3.3-70b-instruct"), "remote") == "remote"
    assert backend_for(get_spec("gemma-2-2b-it"), "remote") == "local"
    assert backend_for(get_spec("llama-3.3-70b-instruct"), "local") == "local"


def test_bad_backend_is_named():
    with pytest.raises(ValueError, match="BACKEND must be 'local' or 'remote'"):
        load_model(EMBEDDED_MODEL, backend="gpu")


def test_remote_payload_survives_nnsight_serialization(tiny_model, tiny_sae):
    """nnsight's in-process remote simulation serializes our steering and sampler like NDIF."""
    trials = [Trial("Hi there?", Steering(3, 2.0, ablate=(1,)), seed=1), Trial("Hello?", seed=2)]
    sampling = Sampling(max_new_tokens=6)
    local = generate_trials(tiny_model, trials, sae=tiny_sae, sampling=sampling, progress=False)
    simulated = dataclasses.replace(tiny_model, remote="local")
    remote = generate_trials(simulated, trials, sae=tiny_sae, sampling=sampling, progress=False)
    assert [r["response"] for r in remote] == [r["response"] for r in local]
    norms = residual_norms(simulated, ["Hi there?"], [1, 2])
    assert norms[2][0].shape == residual_norms(tiny_model, ["Hi there?"], [2])[2][0].shape


def test_read_residuals_matches_a_full_forward_and_stops_after_the_last_layer(tiny_model):
    """Reading layers 0 and 1 of 4 gives transformers' hidden states there, and neither block 2,
    block 3 nor the unembedding runs (locally and through nnsight's remote simulation)."""
    batch = tokenize_chats(tiny_model.tokenizer, ["Hi there?", "How do tides work?"])
    with torch.no_grad():
        full = tiny_model.hf(**batch, output_hidden_states=True).hidden_states
    calls = []
    hooks = [module.register_forward_hook(lambda *_: calls.append(1))
             for module in (tiny_model.hf.model.layers[2], tiny_model.hf.model.layers[3],
                            tiny_model.hf.lm_head)]
    try:
        for model in (tiny_model, dataclasses.replace(tiny_model, remote="local")):
            read = model.read_residuals(batch, [1, 0])
            assert sorted(read) == [0, 1]
            for layer in (0, 1):  # hidden_states[i + 1] is the output of block i
                torch.testing.assert_close(read[layer], full[layer + 1])
        assert calls == []
    finally:
        for hook in hooks:
            hook.remove()


def test_every_registry_entry_has_a_steering_layer_inside_the_model():
    for spec in MODEL_REGISTRY.values():
        spec.check_layer(spec.steering_layer)
