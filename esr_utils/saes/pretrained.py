"""Converters for paper SAEs downloaded by hand: Gemma Scope and Goodfire files to sae-lens SAEs.

Each converter applies the same key renames and config fields as sae-lens's own loaders, so a
local file gives the SAE that `SAE.from_pretrained` would, without network access.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["gemma_scope_sae_id", "load_gemma_scope_file", "load_goodfire_file"]


def gemma_scope_sae_id(release: str, layer: int, width: str = "16k") -> str:
    """`layer_{layer}/width_{width}/canonical`, checked against sae-lens's release directory."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        known = sorted(r for r in directory if r.startswith("gemma-scope"))
        raise ValueError(f"unknown Gemma Scope release {release!r}; known: {known}")
    sae_id = f"layer_{int(layer)}/width_{width}/canonical"
    ids = directory[release].saes_map
    if sae_id not in ids:
        layers = sorted({int(i.split("/")[0][6:]) for i in ids if i.startswith("layer_")})
        widths = sorted({i.split("/")[1][6:] for i in ids if i.startswith(f"layer_{layer}/")})
        hint = (f"widths at layer {layer}: {widths}" if widths
                else f"layers with canonical SAEs: {layers}")
        raise ValueError(f"{release} has no SAE {sae_id!r}; {hint}")
    return sae_id


def _from_state_dict(cfg_dict: dict, state_dict: dict, device: str, dtype: str):
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import handle_config_defaulting

    cfg_dict = handle_config_defaulting({**cfg_dict, "device": device, "dtype": dtype})
    cfg_cls = SAE.get_sae_config_class_for_architecture(cfg_dict["architecture"])
    sae = SAE.get_sae_class_for_architecture(cfg_dict["architecture"])(cfg_cls.from_dict(cfg_dict))
    sae.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()})
    return sae.to(device=device, dtype=getattr(torch, dtype))


def load_gemma_scope_file(path: str | Path, release: str, sae_id: str, device: str = "cpu",
                          dtype: str = "float32", cfg_overrides: dict | None = None):
    """A Gemma Scope SAE from a local `params.npz` or `params.safetensors` (or their folder).

    `cfg_overrides` works as in sae-lens's loaders (tests use it for tiny synthetic files).
    """
    import numpy as np
    from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "params.npz", path / "params.safetensors") if p.exists()]
        if not found:
            raise FileNotFoundError(f"{path} has neither params.npz nor params.safetensors "
                                    "(the Gemma Scope parameter file)")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"no Gemma Scope parameter file at {path}: pass the downloaded "
                                "params.npz (or params.safetensors), or the folder holding it")
    lookup = get_pretrained_saes_directory()[release]
    cfg = get_gemma_2_config_from_hf(lookup.repo_id, lookup.saes_map[sae_id], device,
                                     cfg_overrides=cfg_overrides)
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw = {k: torch.from_numpy(np.asarray(data[k])) for k in data.files}
    else:
        from safetensors.torch import load_file

        raw = load_file(path)
    # sae-lens's rename: w_enc/w_dec -> W_enc/W_dec; biases and threshold keep their names
    state = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in raw.items()}
    expected = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}
    if set(state) != expected:
        raise ValueError(f"{path} holds {sorted(raw)}; a Gemma Scope file holds "
                         "w_enc, w_dec, b_enc, b_dec, threshold")
    if tuple(state["W_enc"].shape) != (cfg["d_in"], cfg["d_sae"]):
        raise ValueError(f"{path} has W_enc of shape {tuple(state['W_enc'].shape)}, but "
                         f"{release}/{sae_id} is {cfg['d_in']}x{cfg['d_sae']}: wrong file?")
    return _from_state_dict(cfg, state, device, dtype)


def load_goodfire_file(path: str | Path, release: str, device: str = "cpu",
                       dtype: str = "float32", cfg_overrides: dict | None = None):
    """A Goodfire SAE from its local `.pt`/`.pth` state dict (encoder_linear/decoder_linear)."""
    from sae_lens.loading.pretrained_sae_loaders import get_goodfire_config_from_hf
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no Goodfire SAE file at {path}")
    lookup = get_pretrained_saes_directory()[release]
    folder = next(iter(lookup.saes_map.values()))
    cfg = get_goodfire_config_from_hf(lookup.repo_id, folder, device, cfg_overrides=cfg_overrides)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("encoder_linear.weight", "decoder_linear.weight", "encoder_linear.bias",
            "decoder_linear.bias")
    if any(k not in raw for k in keys):
        raise ValueError(f"{path} holds {sorted(raw)}; a Goodfire SAE holds {list(keys)}")
    state = {"W_enc": raw[keys[0]].T, "W_dec": raw[keys[1]].T, "b_enc": raw[keys[2]],
             "b_dec": raw[keys[3]]}
    if tuple(state["W_enc"].shape) != (cfg["d_in"], cfg["d_sae"]):
        raise ValueError(f"{path} has an encoder of shape {tuple(state['W_enc'].shape)}, but "
                         f"{release} is {cfg['d_in']}x{cfg['d_sae']}: wrong file?")
    return _from_state_dict(cfg, state, device, dtype)
