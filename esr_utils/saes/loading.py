"""Loading SAEs: the shipped embedded SAE, Gemma Scope and Goodfire releases, any sae-lens folder.

Paper SAEs are downloaded (through sae-lens) only when one is asked for without a local
`path`. With `path`, the files a user downloaded by hand are converted exactly as sae-lens
converts them (same key renames, same config fields), without any network access.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from esr_utils.models import EMBEDDED_MODEL, ModelSpec, get_spec
from esr_utils.paths import DATA_DIR

__all__ = [
    "EMBEDDED_SAE_DIR",
    "CorruptSaeError",
    "load_sae",
    "save_embedded_sae",
    "verify_sae_folder",
    "gemma_scope_sae_id",
    "load_gemma_scope_file",
    "load_goodfire_file",
    "check_latent_ids",
]

EMBEDDED_SAE_DIR = DATA_DIR / "embedded_sae"
MANIFEST = "manifest.json"
_WIDTHS = {"16k": 16_384, "32k": 32_768, "65k": 65_536, "131k": 131_072, "262k": 262_144,
           "524k": 524_288, "1m": 1_048_576}


class CorruptSaeError(ValueError):
    """An SAE file whose SHA-256 does not match the one recorded when it was written."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_sae_folder(path: str | Path) -> None:
    """Check every file listed in the folder's `manifest.json` against its SHA-256."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"{path} has no {MANIFEST}, so its files cannot be verified; "
                                "pass verify=False to load an unverified sae-lens folder")
    for name, digest in json.loads(manifest.read_text())["sha256"].items():
        file = path / name
        if not file.exists():
            raise FileNotFoundError(f"{file} is missing; restore it with `git checkout -- {file}`")
        if _sha256(file) != digest:
            raise CorruptSaeError(
                f"{file} does not match its recorded SHA-256 (truncated or edited?); restore it "
                f"with `git checkout -- {file}` or rebuild it with `python -m esr_utils.sae_training`"
            )


def _check_d_in(sae, spec: ModelSpec | None, where: str):
    if spec is not None and sae.cfg.d_in != spec.d_model:
        raise ValueError(
            f"the SAE at {where} reads vectors of width d_in={sae.cfg.d_in}, but {spec.name} has "
            f"d_model={spec.d_model}: load an SAE trained on {spec.name}'s residual stream"
        )
    return sae


def _load_disk(path: Path, device: str, dtype: str, verify: bool):
    from sae_lens import SAE

    if not path.is_dir():
        raise FileNotFoundError(f"no SAE folder at {path}: expected a sae-lens folder with "
                                "cfg.json and sae_weights.safetensors")
    missing = [f for f in ("cfg.json", "sae_weights.safetensors") if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {', '.join(missing)}: a sae-lens folder holds "
                                "cfg.json and sae_weights.safetensors (written by SAE.save_model)")
    if verify:
        verify_sae_folder(path)
    try:
        return SAE.load_from_disk(path, device=device, dtype=dtype)
    except Exception as err:  # safetensors/json errors name neither the file nor the fix
        raise CorruptSaeError(f"could not read the SAE in {path} ({type(err).__name__}: {err}); "
                              "the files may be truncated or not a sae-lens folder") from err


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


def load_sae(model: str | ModelSpec = EMBEDDED_MODEL, *, path: str | Path | None = None,
             layer: int | None = None, width: str | None = None, device: str = "cpu",
             dtype: str = "float32", verify: bool = True):
    """The SAE a registry model is steered with, as a sae-lens `SAE`.

    Args:
        model: registry name or spec; its `sae.source` picks the loader.
        path: a local copy: the embedded SAE's folder (default: the shipped one), a Gemma Scope
            `params.npz`/`.safetensors`, a Goodfire `.pt`/`.pth`, or any sae-lens folder.
        layer, width: another Gemma Scope canonical SAE than the spec's (e.g. 34, "131k").
        verify: check the folder's `manifest.json` SHA-256s (embedded and disk folders).
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    source = spec.sae.source
    if source == "embedded":
        folder = Path(path) if path is not None else EMBEDDED_SAE_DIR
        return _check_d_in(_load_disk(folder, device, dtype, verify), spec, str(folder))
    if source == "disk" or (path is not None and Path(path).is_dir()
                            and (Path(path) / "cfg.json").exists()):
        if path is None:
            raise ValueError(f"{spec.name}'s SAE is a disk SAE: pass path=<sae-lens folder>")
        has_manifest = (Path(path) / MANIFEST).exists()
        sae = _load_disk(Path(path), device, dtype, verify and has_manifest)
        return _check_d_in(sae, spec, str(path))
    if source == "gemma_scope":
        sae_id = spec.sae.sae_id
        if layer is not None or width is not None:
            current_width = sae_id.split("/")[1][6:]
            sae_id = gemma_scope_sae_id(spec.sae.release, spec.sae.layer if layer is None
                                        else layer, width or current_width)
        else:
            gemma_scope_sae_id(spec.sae.release, spec.sae.layer, sae_id.split("/")[1][6:])
        if path is not None:
            sae = load_gemma_scope_file(path, spec.sae.release, sae_id, device, dtype)
        else:
            from sae_lens import SAE

            sae = SAE.from_pretrained(spec.sae.release, sae_id, device=device, dtype=dtype)
        return _check_d_in(sae, spec, f"{spec.sae.release}/{sae_id}")
    if source == "goodfire":
        if layer is not None and layer != spec.sae.layer:
            raise ValueError(f"Goodfire ships one SAE for {spec.name}, at layer {spec.sae.layer}")
        if path is not None:
            sae = load_goodfire_file(path, spec.sae.release, device, dtype)
        else:
            from sae_lens import SAE

            sae = SAE.from_pretrained(spec.sae.release, spec.sae.sae_id, device=device,
                                      dtype=dtype)
        return _check_d_in(sae, spec, spec.sae.release)
    raise ValueError(f"unknown SAE source {source!r} for {spec.name}")


def check_latent_ids(sae, ids) -> list[int]:
    """The ids as ints, or an error naming the valid range."""
    d_sae = sae.W_dec.shape[0]
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < d_sae]
    if bad:
        raise IndexError(f"latent ids {bad} are out of range: this SAE has latents 0..{d_sae - 1}")
    return ids


def save_embedded_sae(sae, out: str | Path, labels: dict | None = None,
                      training: dict | None = None, weight_dtype=torch.float16) -> Path:
    """Write a sae-lens folder (weights in `weight_dtype`), labels, record, card and manifest."""
    from safetensors.torch import load_file, save_file

    from esr_utils.sae_card import write_model_card

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sae.save_model(out)
    weights = out / "sae_weights.safetensors"
    save_file({k: v.to(weight_dtype).contiguous() for k, v in load_file(weights).items()}, weights)
    names = ["cfg.json", "sae_weights.safetensors"]
    if labels is not None:
        from esr_utils.labels import LatentLabels

        LatentLabels(labels["meta"], labels["latents"]).save(out / "labels.json.gz")
        names.append("labels.json.gz")
    if training is not None:
        (out / "training.json").write_text(json.dumps(training, indent=1) + "\n")
        names.append("training.json")
    digests = {n: _sha256(out / n) for n in names}
    (out / MANIFEST).write_text(json.dumps({"sha256": digests}, indent=1) + "\n")
    if training is not None:
        write_model_card(out, training, digests)
    return out
