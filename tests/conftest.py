"""Shared fixtures: seeds, a tiny random Llama with the real module tree, the embedded tokenizer.

Also: a skipped test fails the run. A test that cannot run on a fresh machine (missing data, a
missing package) points at a broken install, which a skip would hide from `make test`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from esr_utils.lanes import threads_per_job

# Under pytest-xdist the cores are shared out as `runner --jobs` shares them (one torch thread
# per worker on 2 cores; esr_utils.lanes says why): two workers of 2 threads each oversubscribe
# the cores. The notebook kernels the tests start inherit the variable.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = threads_per_job(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} was skipped ({reason}); skips count as failures: "
                           "ship what the test needs, or take it from a pinned package")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 (code under test may still draw from the legacy global RNG)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded model's tokenizer (from the dense cache, built on first use)."""
    from transformers import AutoTokenizer

    from esr_utils.models import embedded_dense_dir

    return AutoTokenizer.from_pretrained(embedded_dense_dir())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_tokenizer):
    """A random 4-layer Llama saved as a transformers folder, with the real tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=len(embedded_tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=embedded_tokenizer.bos_token_id, eos_token_id=embedded_tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    embedded_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_spec():
    """A registry-style spec for the tiny model (4 layers, d_model 64, steering at layer 2)."""
    from esr_utils.models import ModelSpec, SaeSpec

    return ModelSpec(name="tiny-llama", hf_repo="local/tiny-llama", n_layers=4, d_model=64,
                     steering_layer=2, sae=SaeSpec(source="disk", layer=2, d_sae=32),
                     max_new_tokens=16)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir, tiny_spec):
    from esr_utils.models import load_model

    return load_model(tiny_spec, device="cpu", dtype="float32", path=tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_sae():
    """A random standard (ReLU) sae-lens SAE matching the tiny model (d_in 64, 32 latents)."""
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(99)
    sae = StandardSAE(StandardSAEConfig(d_in=64, d_sae=32, apply_b_dec_to_input=False))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return sae


@pytest.fixture(scope="session")
def unit_sae():
    """A stand-in 'SAE slice' of 8 random unit directions for the embedded model."""
    from esr_utils.saes import SaeSlice

    g = torch.Generator().manual_seed(7)
    rows = torch.randn(8, 576, generator=g)
    rows = rows / rows.norm(dim=-1, keepdim=True)
    return SaeSlice(576, 8, tuple(range(8)), rows, (), torch.zeros(576, 0), torch.zeros(0),
                    torch.zeros(0, 576), None, torch.zeros(576))


@pytest.fixture(scope="session")
def embedded():
    """The embedded model itself, on the CPU."""
    from esr_utils.models import load_model

    return load_model("smollm2-135m-instruct", device="cpu")
