"""The benchmark's arithmetic: weights counted once (tied lm_head included) and the roofline."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from benchmarks.run import flops_per_token, multiplied_weights, roofline


def tiny_model(tied: bool = True):
    config = SimpleNamespace(tie_word_embeddings=tied, vocab_size=100, hidden_size=10,
                             num_hidden_layers=1)
    params = [("model.embed_tokens.weight", torch.zeros(100, 10)),
              ("model.layers.0.mlp.weight", torch.zeros(10, 10))]
    return SimpleNamespace(hf=SimpleNamespace(config=config,
                                              named_parameters=lambda: iter(params)))


def test_the_tied_lm_head_counts_and_the_input_embedding_does_not():
    assert multiplied_weights(tiny_model(tied=True)) == 100 + 1000
    assert multiplied_weights(tiny_model(tied=False)) == 100
    # 2 FLOPs per weight, plus 2·2·layers·context·hidden for the attention scores
    assert flops_per_token(tiny_model(), context=3) == 2 * 1100 + 4 * 3 * 10


def test_roofline_is_memory_bound_for_one_row_and_compute_bound_for_many():
    one = roofline(tiny_model(), batch=1, context=0, peak_gflops=100.0, bandwidth_gbs=10.0)
    # 2,200 FLOPs per 4,400 bytes read: 0.5 FLOP/byte × 10 GB/s = 5 GFLOP/s, under the peak
    assert one["flops_per_byte"] == 0.5 and one["attainable_gflops"] == pytest.approx(5.0)
    assert one["bound"] == "memory"
    many = roofline(tiny_model(), batch=1000, context=0, peak_gflops=100.0, bandwidth_gbs=10.0)
    assert many["attainable_gflops"] == 100.0 and many["bound"] == "compute"
