"""Code and SAE fingerprints: what changes them and what does not."""

from __future__ import annotations

import torch

import esr_utils.provenance as provenance
from esr_utils.provenance import (
    code_fingerprint,
    describe_changes,
    module_closure,
    sae_sha256,
    trial_provenance,
)


def test_the_generation_path_covers_the_modules_that_make_a_trial():
    closure = module_closure(["esr_utils.generation"])
    for module in ("esr_utils.generation", "esr_utils.steering", "esr_utils.models",
                   "esr_utils.prompts"):
        assert module in closure
    assert any(m.startswith("esr_utils.saes") for m in closure)


def test_fingerprint_follows_code_not_comments_or_docstrings(tmp_path, monkeypatch):
    source = provenance._source_file("esr_utils.steering").read_text()
    copy = tmp_path / "steering.py"
    real_source_file = provenance._source_file

    def fingerprint_of(text):
        copy.write_text(text)
        provenance._parsed.cache_clear()
        monkeypatch.setattr(provenance, "_source_file",
                            lambda m: copy if m == "esr_utils.steering" else real_source_file(m))
        return code_fingerprint(["esr_utils.steering"])["esr_utils.steering"]

    try:
        original = fingerprint_of(source)
        reformatted = source.replace('"""Steering and zero-ablation', '"""Reworded docstring') \
            + "\n# a comment\n"
        assert fingerprint_of(reformatted) == original
        changed = source.replace("return out + add.to(h.dtype)", "return out - add.to(h.dtype)")
        assert changed != source and fingerprint_of(changed) != original
    finally:
        provenance._parsed.cache_clear()


def test_sae_hash_is_cached_and_follows_the_weights(tiny_sae):
    import copy

    digest = sae_sha256(tiny_sae)
    assert tiny_sae.content_sha256 == digest and sae_sha256(tiny_sae) == digest
    other = copy.deepcopy(tiny_sae)
    del other.content_sha256
    assert sae_sha256(other) == digest
    del other.content_sha256
    with torch.no_grad():
        other.b_enc[0] += 1e-3
    assert sae_sha256(other) != digest


def test_adapter_slot_and_change_descriptions(tiny_spec):
    class WithAdapter:
        adapter_sha256 = "ab" * 32

    assert trial_provenance(tiny_spec)["adapter"] is None
    assert trial_provenance(WithAdapter())["adapter"] == "ab" * 32
    old = {"code": {"a": "1" * 16, "b": "2" * 16}, "sae": "x", "adapter": None,
           "versions": {"torch": "1"}}
    new = {"code": {"a": "1" * 16, "c": "3" * 16}, "sae": "y", "adapter": "z",
           "versions": {"torch": "2"}}
    assert describe_changes(old, new) == [
        "module b is no longer on the path", "module c is new on the path",
        "SAE changed (x -> y)", "adapter changed (None -> z)", "torch version changed (1 -> 2)"]
