"""The shipped adapter: save it with a manifest, verify it, and merge it into cached dense weights.

The organism `smollm2-135m-esr` is the embedded model plus the LoRA adapter in
`esr_utils/data/organism/adapter/`. `merged_dense_dir` merges the two once (peft
`merge_and_unload`) into a plain transformers folder in the user cache, keyed by the adapter's
SHA-256, so the organism loads and steers through exactly the code every other model uses.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from esr_utils.finetuning.examples import ORGANISM_DATA_DIR
from esr_utils.paths import build_once, cache_dir

__all__ = [
    "ADAPTER_DIR",
    "ADAPTER_FILES",
    "CorruptAdapterError",
    "adapter_sha256",
    "load_adapter",
    "merged_dense_dir",
    "save_adapter",
    "verify_adapter",
]

ADAPTER_DIR = ORGANISM_DATA_DIR / "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MANIFEST = "manifest.json"


class CorruptAdapterError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_adapter(peft_model, out: Path, *, dtype: torch.dtype = torch.float16,
                 extra_files: dict[str, str] | None = None) -> dict:
    """Save the LoRA weights (cast to `dtype` to keep the repo small), extra text files, and a
    manifest of SHA-256s. Returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # no embedding layers are adapted; False also skips peft's Hub lookup of the base config
    peft_model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
    # record the public base, not this machine's cache path (rewritten after saving: given a Hub
    # id, peft's save would try to fetch that model's config over the network)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if dtype != torch.float32:
        from safetensors.torch import load_file, save_file

        weights = out / "adapter_model.safetensors"
        save_file({k: v.to(dtype).contiguous() for k, v in load_file(weights).items()}, weights,
                  metadata={"format": "pt"})
    (out / "README.md").unlink(missing_ok=True)  # peft's template card; ours is written below
    for name, text in (extra_files or {}).items():
        (out / name).write_text(text)
    names = [*ADAPTER_FILES, *sorted(extra_files or {})]
    manifest = {"sha256": {n: _sha256(out / n) for n in names}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_adapter(folder: Path = ADAPTER_DIR) -> None:
    """Check every file in the manifest; a mismatch names the file and how to rebuild."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"no adapter manifest at {manifest}: run `make organism`")
    for name, digest in json.loads(manifest.read_text())["sha256"].items():
        path = folder / name
        if not path.exists() or _sha256(path) != digest:
            raise CorruptAdapterError(f"{path} is missing or does not match its SHA-256 in "
                                      f"{manifest}: restore it from git or run `make organism`")


def adapter_sha256(folder: Path = ADAPTER_DIR) -> str:
    """The adapter weights' SHA-256 (from the manifest): the key results are stored under."""
    manifest = Path(folder) / MANIFEST
    if not manifest.exists():
        raise FileNotFoundError(f"no adapter manifest at {manifest}: run `make organism`")
    return json.loads(manifest.read_text())["sha256"]["adapter_model.safetensors"]


def load_adapter(hf_model, folder: Path = ADAPTER_DIR, *, verify: bool = True):
    """Wrap a float32 base model with the saved adapter (unmerged) for inspection or tests."""
    from peft import PeftModel

    if verify:
        verify_adapter(folder)
    return PeftModel.from_pretrained(hf_model, str(folder), is_trainable=False).eval()


def merged_dense_dir(base_dir: Path, folder: Path = ADAPTER_DIR, name: str = "smollm2-135m-esr"
                     ) -> Path:
    """Base weights + adapter merged once into `<cache>/<name>-<sha[:10]>` (float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    verify_adapter(folder)
    sha = adapter_sha256(folder)
    target = cache_dir() / f"{name}-{sha[:10]}-{Path(base_dir).name}"

    def merge() -> None:
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
        merged = load_adapter(base, folder, verify=False).merge_and_unload()
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(tmp)
        (tmp / "done.json").write_text(json.dumps({"adapter_sha256": sha, "base": str(base_dir)}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    build_once(target.name, (target / "done.json").exists, merge)
    return target
