"""LoRA adapter: a training step changes only adapter weights, save/load round-trips exactly,
the merged-weights cache equals base + scale·B·A, and resistance training needs its vectors."""

import pytest
import torch
from safetensors.torch import load_file

from esr_utils.finetuning.examples import normal_example, self_correction_example
from esr_utils.finetuning.organism import (
    CorruptAdapterError,
    adapter_sha256,
    load_adapter,
    merged_dense_dir,
    save_adapter,
    verify_adapter,
)
from esr_utils.finetuning.pipeline import base_hf
from esr_utils.finetuning.training import recipe, train_lora

EXAMPLES = [
    self_correction_example(0, "Explain how to boil an egg.", "Volcanoes erupt hot lava.",
                            "Wait, that's not what you asked about.", "Put the egg in water.", {}),
    normal_example(1, "How do you fly a kite?", "Run into the wind and let the line out.", {}),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    hf, tok = base_hf()
    r = recipe("smoke", rank=2, alpha=4, micro_batch=2, max_steps=1, max_len=64,
               learning_rate=5e-2)
    result = train_lora(hf, tok, EXAMPLES, r, seed=0, progress=False)
    folder = tmp_path_factory.mktemp("adapter")
    # float32 on disk, so the round trip is exact
    save_adapter(result.model, folder, dtype=torch.float32, extra_files={"README.md": "card\n"})
    return result, folder, tok


def test_training_steps_and_counts_tokens(trained):
    result, _, _ = trained
    assert len(result.history) == 1 and result.tokens > 0
    lora_b = [p for n, p in result.model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero; one step moved it


def test_save_load_round_trip_gives_identical_logits(trained):
    result, folder, tok = trained
    ids = tok("Explain how to boil an egg.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = result.model(input_ids=ids).logits
        fresh, _ = base_hf()
        after = load_adapter(fresh, folder)(input_ids=ids).logits
        plain = base_hf()[0](input_ids=ids).logits
    assert torch.equal(before, after)
    assert not torch.equal(before, plain)


def test_manifest_catches_a_changed_file(trained, tmp_path):
    _, folder, _ = trained
    verify_adapter(folder)
    assert len(adapter_sha256(folder)) == 64
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "README.md").write_text("edited\n")
    with pytest.raises(CorruptAdapterError, match="README.md"):
        verify_adapter(copy)


def test_merged_cache_equals_base_plus_scaled_lora_product(trained, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from esr_utils.models import embedded_dense_dir

    _, folder, _ = trained
    base_dir = embedded_dense_dir()  # the shared cache; the merged copy goes to tmp_path
    monkeypatch.setenv("ESR_CACHE_DIR", str(tmp_path))
    merged_dir = merged_dense_dir(base_dir, folder, name="test-organism")
    assert merged_dir.parent == tmp_path
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    lora = load_file(folder / "adapter_model.safetensors")
    scale = 4 / 2  # alpha / rank
    key = "base_model.model.model.layers.3.self_attn.q_proj"
    a, b = lora[f"{key}.lora_A.weight"], lora[f"{key}.lora_B.weight"]
    expected = base.model.layers[3].self_attn.q_proj.weight + scale * (b @ a)
    torch.testing.assert_close(merged.model.layers[3].self_attn.q_proj.weight, expected,
                               rtol=0, atol=1e-6)
    # a second call reuses the cache
    assert merged_dense_dir(base_dir, folder, name="test-organism") == merged_dir


def test_resistance_training_needs_steering_rows():
    hf, tok = base_hf()
    with pytest.raises(ValueError, match="steer_rows"):
        train_lora(hf, tok, EXAMPLES, recipe("smoke", resistance=True), progress=False)


def test_a_notebook_trained_variant_is_keyed_by_its_own_adapter(trained, tmp_path):
    from esr_utils.finetuning.pipeline import trained_variant
    from esr_utils.models import get_spec

    result, _, tok = trained
    model = trained_variant(result.model, tmp_path / "sc50", "smollm2-135m-esr-sc50")
    assert model.spec.name == "smollm2-135m-esr-sc50"
    assert model.spec.adapter_sha256 == adapter_sha256(tmp_path / "sc50")
    assert model.spec.adapter_sha256 != get_spec("smollm2-135m-esr").adapter_sha256
    ids = tok("Explain how to boil an egg.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.equal(model.hf(input_ids=ids).logits, base_hf()[0](input_ids=ids).logits)
