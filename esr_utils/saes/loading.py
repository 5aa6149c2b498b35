"""Loading SAEs: the shipped embedded SAE, Gemma Scope and Goodfire releases, any sae-lens folder.

Paper SAEs are downloaded (through sae-lens) only when one is asked for without a local
`path`. With `path`, the files a user downloaded by hand are converted by
`esr_utils.saes.pretrained` exactly as sae-lens converts them, without any network access.
Under the dry run (`ESR_STAND_INS=1`) those files are the stand-ins' (`esr_utils.stand_ins`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from esr_utils import stand_ins
from esr_utils.jsonl import read_json_file
from esr_utils.models import EMBEDDED_MODEL, ModelSpec, get_spec
from esr_utils.paths import DATA_DIR
from esr_utils.saes.pretrained import gemma_scope_sae_id, load_gemma_scope_file, load_goodfire_file

__all__ = ["EMBEDDED_SAE_DIR", "MANIFEST", "CorruptSaeError", "sha256_file", "load_sae",
           "verify_sae_folder"]

EMBEDDED_SAE_DIR = DATA_DIR / "embedded_sae"
MANIFEST = "manifest.json"


class CorruptSaeError(ValueError):
    """An SAE file whose SHA-256 does not match the one recorded when it was written."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_sae_folder(path: str | Path) -> None:
    """Check every file listed in the folder's `manifest.json` against its SHA-256."""
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"{path} has no {MANIFEST}, so its files cannot be verified; "
                                "pass verify=False to load an unverified sae-lens folder")
    listed = read_json_file(manifest, "SAE manifest", fix=f"restore it with `git checkout -- "
                            f"{manifest}` or rebuild the SAE with `make sae`")
    if not isinstance(listed, dict) or not isinstance(listed.get("sha256"), dict):
        raise CorruptSaeError(f"{manifest} has no 'sha256' table; restore it with "
                              f"`git checkout -- {manifest}`")
    for name, digest in listed["sha256"].items():
        file = path / name
        if not file.exists():
            raise FileNotFoundError(f"{file} is missing; restore it with `git checkout -- {file}`")
        if sha256_file(file) != digest:
            raise CorruptSaeError(
                f"{file} does not match its recorded SHA-256 (truncated or edited?); restore it "
                f"with `git checkout -- {file}` or rebuild it with `make sae`"
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
    overrides = None
    if stand_ins.active() and source in {"gemma_scope", "goodfire"} and path is None:
        if layer not in (None, spec.sae.layer) or width is not None:
            raise ValueError("the dry run's stand-ins have one SAE per model, at the spec's layer")
        path, overrides = stand_ins.sae_file(spec), {"d_in": spec.d_model}
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
            sae = load_gemma_scope_file(path, spec.sae.release, sae_id, device, dtype, overrides)
        else:
            from sae_lens import SAE

            sae = SAE.from_pretrained(spec.sae.release, sae_id, device=device, dtype=dtype)
        return _check_d_in(sae, spec, f"{spec.sae.release}/{sae_id}")
    if source == "goodfire":
        if layer is not None and layer != spec.sae.layer:
            raise ValueError(f"Goodfire ships one SAE for {spec.name}, at layer {spec.sae.layer}")
        if path is not None:
            sae = load_goodfire_file(path, spec.sae.release, device, dtype, overrides)
        else:
            from sae_lens import SAE

            sae = SAE.from_pretrained(spec.sae.release, spec.sae.sae_id, device=device,
                                      dtype=dtype)
        return _check_d_in(sae, spec, spec.sae.release)
    raise ValueError(f"unknown SAE source {source!r} for {spec.name}")
