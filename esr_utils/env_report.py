"""`python -m esr_utils.env_report`: what this environment has, before anything slow runs."""

from __future__ import annotations

import json

from esr_utils.hardware import resolve_device
from esr_utils.paths import cache_dir
from esr_utils.results import package_versions

__all__ = ["env_report"]


def env_report() -> dict:
    from esr_utils.models import embedded_gguf_path

    try:
        gguf = str(embedded_gguf_path().name)
    except (ModuleNotFoundError, FileNotFoundError) as err:
        gguf = f"MISSING: {err}"
    return {
        "versions": package_versions(),
        "device": resolve_device("auto"),
        "embedded_model_file": gguf,
        "cache_dir": str(cache_dir()),
    }


if __name__ == "__main__":
    print(json.dumps(env_report(), indent=2))
