"""Train an SAE with sae-lens's `SAETrainer` on cached residual activations.

`train_sae` runs several epochs over the cached activations and folds sae-lens's input-norm
scaling back into the weights, so the result reads raw residuals.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from esr_utils.saes.training.settings import TrainSettings

__all__ = ["make_training_sae", "train_sae"]


def _batches(acts: Tensor, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless shuffled float32 batches, a new permutation each epoch."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(acts.shape[0], generator=gen)
        for start in range(0, len(perm) - batch_size + 1, batch_size):
            yield acts[perm[start:start + batch_size]].float()


def make_training_sae(settings: TrainSettings, d_in: int, steps: int = 1000):
    """A fresh sae-lens training SAE of the chosen architecture.

    For batchtopk, the shared threshold is a moving average of the smallest kept activation;
    its rate is raised for short runs so that it settles within `steps`.
    """
    from sae_lens import (
        BatchTopKTrainingSAE,
        BatchTopKTrainingSAEConfig,
        JumpReLUTrainingSAE,
        JumpReLUTrainingSAEConfig,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
    )

    common = dict(d_in=d_in, d_sae=settings.d_sae, apply_b_dec_to_input=False,
                  normalize_activations="expected_average_only_in", device="cpu")
    if settings.architecture == "batchtopk":
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(
            **common, k=settings.target_l0, aux_loss_coefficient=1.0,
            rescale_acts_by_decoder_norm=True, topk_threshold_lr=max(0.01, 5.0 / steps)))
    if settings.architecture == "jumprelu":
        return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
            **common, jumprelu_sparsity_loss_mode="quadratic", target_l0=settings.target_l0,
            l0_coefficient=settings.l0_coefficient,
            jumprelu_init_threshold=settings.init_threshold,
            jumprelu_bandwidth=0.05, pre_act_loss_coefficient=3e-6))
    if settings.architecture == "standard":
        return StandardTrainingSAE(StandardTrainingSAEConfig(
            **common, l1_coefficient=settings.l1_coefficient))
    raise ValueError("architecture must be 'batchtopk', 'jumprelu' or 'standard', "
                     f"got {settings.architecture!r}")


@contextmanager
def _quiet_sae_lens(quiet: bool):
    """Silence sae-lens's training progress bars (it offers no switch for them)."""
    import sae_lens.training.activation_scaler as scaler_module
    import sae_lens.training.sae_trainer as trainer_module

    modules = (trainer_module, scaler_module) if quiet else ()
    saved = [(m, m.tqdm) for m in modules]
    for module, bar in saved:
        module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        for module, bar in saved:
            module.tqdm = bar


def train_sae(acts: Tensor, settings: TrainSettings, progress: bool = True):
    """Train with sae-lens's `SAETrainer` on cached activations; returns the inference SAE."""
    from sae_lens import SAE
    from sae_lens.config import SAETrainerConfig

    torch.manual_seed(settings.seed)
    total = int(acts.shape[0] * settings.epochs)
    steps = max(1, total // settings.batch_size)
    training_sae = make_training_sae(settings, acts.shape[1], steps)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total, train_batch_size_samples=settings.batch_size,
        lr=settings.lr, lr_end=settings.lr / 10, lr_warm_up_steps=max(1, steps // 20),
        lr_decay_steps=steps // 5,
        lr_scheduler_name="constant", device="cpu", dead_feature_window=max(50, steps // 10),
        feature_sampling_window=max(1, steps // 4), n_batches_for_norm_estimate=20,
    )
    from sae_lens.training.sae_trainer import SAETrainer

    trainer = SAETrainer(trainer_cfg, training_sae,
                         _batches(acts, settings.batch_size, settings.seed))
    with _quiet_sae_lens(not progress):
        trained = trainer.fit()
    # convert to the inference class through sae-lens's own inference save format
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_inference_model(tmp)
        return SAE.load_from_disk(tmp)
