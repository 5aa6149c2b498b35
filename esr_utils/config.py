"""Profiles (`smoke`, `cpu`, `paper`) and the frozen run config each notebook builds from them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

import esr_utils
from esr_utils.paths import PROFILES_DIR, RESULTS_DIR

__all__ = ["PROFILES", "RunConfig", "load_profile", "notebook_parameters"]

PROFILES = ("smoke", "cpu", "paper")
_COMPUTE = ("allow", "cache-only")
# fields that do not change results, so they stay out of the key
_COSMETIC = {"compute", "device"}


def load_profile(name: str) -> dict:
    """Read `esr_utils/profiles/<name>.yaml` (keys: `shared`, `notebooks`)."""
    if name not in PROFILES:
        raise ValueError(f"PROFILE must be one of {PROFILES}, got {name!r}")
    data = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
    return {"shared": data.get("shared") or {}, "notebooks": data.get("notebooks") or {}}


def notebook_parameters(profile: str, notebook: str) -> dict:
    """The papermill parameters for one notebook under one profile: shared keys, then its own."""
    data = load_profile(profile)
    return {"PROFILE": profile, **data["shared"], **(data["notebooks"].get(notebook) or {})}


def _freeze(value):
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class RunConfig:
    """Everything one notebook run depends on; built once in the setup cell, then read only.

    `params` holds the notebook's own parameters (e.g. `n_prompts`), lower-cased.
    """

    notebook: str
    profile: str = "cpu"
    model: str = "smollm2-135m-instruct"
    device: str = "auto"
    backend: str = "local"
    seed: int = 0
    compute: str = "allow"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"PROFILE must be one of {PROFILES}, got {self.profile!r}")
        if self.backend not in ("local", "remote"):
            raise ValueError(f"BACKEND must be 'local' or 'remote', got {self.backend!r}")
        if self.compute not in _COMPUTE:
            raise ValueError(f"COMPUTE must be one of {_COMPUTE}, got {self.compute!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"SEED must be an int, got {self.seed!r}")
        object.__setattr__(self, "params", _freeze({k.lower(): v for k, v in self.params.items()}))

    def __getattr__(self, name: str):
        # notebook parameters read as attributes: cfg.n_prompts
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"RunConfig has no field or parameter {name!r}")

    def to_dict(self) -> dict:
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "RunConfig":
        return cls(**data)

    def key(self) -> str:
        """Short hash of every field that affects results, plus the package version."""
        data = {k: v for k, v in self.to_dict().items() if k not in _COSMETIC}
        data["esr_utils"] = esr_utils.__version__
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def results_dir(self) -> Path:
        """`book/results/<profile>/<notebook>/<key>/`, created on first use."""
        path = RESULTS_DIR / self.profile / self.notebook / self.key()
        path.mkdir(parents=True, exist_ok=True)
        return path
