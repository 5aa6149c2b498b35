"""Profiles (`smoke`, `cpu`, `paper`) and the frozen run config each notebook builds from them."""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

import esr_utils
from esr_utils.paths import NOTEBOOKS_DIR, PROFILES_DIR, RESULTS_DIR

__all__ = ["PROFILES", "MEASURING_PROFILES", "COMPUTE_VALUES", "RunConfig", "load_profile",
           "notebook_parameters", "notebook_defaults", "check_parameters", "check_compute",
           "check_latent_id"]

PROFILES = ("smoke", "cpu", "paper", "paper-dryrun")
# profiles whose numbers are measurements; smoke and the dry run only exercise the code
MEASURING_PROFILES = ("cpu", "paper")
COMPUTE_VALUES = ("allow", "cache-only")
# fields that do not change results, so they stay out of the key
_COSMETIC = {"compute", "device"}


def _nearest(value, valid) -> str:
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_compute(value) -> str:
    """`value` if it is a valid COMPUTE setting, else an error naming the valid ones."""
    if value not in COMPUTE_VALUES:
        raise ValueError(f"COMPUTE must be one of {COMPUTE_VALUES}, got {value!r}"
                         f"{_nearest(value, COMPUTE_VALUES)}")
    return value


def check_latent_id(latent_id, model: str) -> int:
    """A latent id valid for `model`'s SAE, checked from the registry before anything loads."""
    from esr_utils.models import get_spec  # deferred: the registry imports torch

    d_sae = get_spec(model).sae.d_sae
    if isinstance(latent_id, bool) or not isinstance(latent_id, int):
        raise ValueError(f"LATENT_ID must be an int, got {latent_id!r}")
    if not 0 <= latent_id < d_sae:
        raise ValueError(f"LATENT_ID {latent_id} is out of range for {model}'s SAE, which has "
                         f"{d_sae} latents: use an id in 0..{d_sae - 1}")
    return latent_id


def load_profile(name: str) -> dict:
    """Read `esr_utils/profiles/<name>.yaml` (keys: `shared`, `notebooks`, and optionally
    `extends`, another profile whose values it overrides key by key, and `stand_ins`, true for
    a dry run on random-weight stand-ins of the paper's models)."""
    if name not in PROFILES:
        raise ValueError(f"PROFILE must be one of {PROFILES}, got {name!r}"
                         f"{_nearest(name, PROFILES)}")
    path = PROFILES_DIR / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"profile file {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k) or {}, dict) for k in ("shared", "notebooks")):
        raise ValueError(f"profile file {path} must map `shared` and `notebooks` to mappings")
    unknown = set(data) - {"shared", "notebooks", "extends", "stand_ins"}
    if unknown:
        raise ValueError(f"profile file {path} has unknown top-level keys {sorted(unknown)}; "
                         f"only `shared`, `notebooks`, `extends` and `stand_ins` are read")
    profile = {"shared": data.get("shared") or {}, "notebooks": data.get("notebooks") or {},
               "stand_ins": data.get("stand_ins", False)}
    if not isinstance(profile["stand_ins"], bool):
        raise ValueError(f"profile file {path}: `stand_ins` must be true or false")
    base = data.get("extends")
    if base is None:
        return profile
    if base == name or base not in PROFILES:
        raise ValueError(f"profile file {path} extends {base!r}, which is not another profile "
                         f"of {PROFILES}")
    parent = load_profile(base)
    notebooks = {stem: {**parent["notebooks"].get(stem, {}), **(section or {})}
                 for stem, section in {**parent["notebooks"], **profile["notebooks"]}.items()}
    return {"shared": {**parent["shared"], **profile["shared"]}, "notebooks": notebooks,
            "stand_ins": profile["stand_ins"]}


def notebook_parameters(profile: str, notebook: str) -> dict:
    """The papermill parameters for one notebook under one profile: shared keys, then its own."""
    data = load_profile(profile)
    return {"PROFILE": profile, **data["shared"], **(data["notebooks"].get(notebook) or {})}


def notebook_defaults(notebook: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> dict:
    """The notebook's parameters and their defaults, read from its `parameters` cell."""
    path = Path(notebooks_dir) / f"{notebook}.ipynb"
    cells = [c for c in json.loads(path.read_text())["cells"]
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path} must have exactly one cell tagged `parameters`")
    source = "".join(cells[0]["source"])
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


def _type_ok(value, default) -> bool:
    if default is None:
        return True
    if value is None:
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(profile: str, notebook: str, params: Mapping[str, Any] | None = None,
                     notebooks_dir: Path = NOTEBOOKS_DIR) -> dict:
    """Check a notebook's parameters under a profile before it runs: names, types, values.

    A misspelt name, a value of the wrong type, an invalid COMPUTE or a LATENT_ID outside the
    SAE's range fails here, naming the profile file, instead of being ignored or failing late.
    """
    params = dict(notebook_parameters(profile, notebook) if params is None else params)
    where = PROFILES_DIR / f"{profile}.yaml"
    defaults = notebook_defaults(notebook, notebooks_dir)
    problems = []
    for name, value in params.items():
        if name not in defaults:
            problems.append(f"{name} is not a parameter of {notebook}"
                            f"{_nearest(name, defaults)}")
        elif name.endswith("BATCH_SIZE") and value == "auto":
            continue  # generation sizes the batch from free memory (esr_utils.batching)
        elif not _type_ok(value, defaults[name]):
            kind = type(defaults[name]).__name__
            problems.append(f"{name} must be of type {kind} like its default "
                            f"{defaults[name]!r}, got {value!r}")
    if not problems:
        try:
            if "COMPUTE" in params:
                check_compute(params["COMPUTE"])
            if "LATENT_ID" in params:
                check_latent_id(params["LATENT_ID"], params.get("MODEL", defaults.get("MODEL")))
        except (ValueError, KeyError) as exc:
            problems.append(str(exc).strip("'\""))
    if problems:
        raise ValueError(f"{where} (section `{notebook}` or `shared`): " + "; ".join(problems))
    return params


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
        check_compute(self.compute)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"SEED must be an int, got {self.seed!r}")
        object.__setattr__(self, "params", _freeze({k.lower(): v for k, v in self.params.items()}))
        if "latent_id" in self.params:
            check_latent_id(self.params["latent_id"], self.model)

    def __getattr__(self, name: str):
        # notebook parameters read as attributes: cfg.n_prompts
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"RunConfig has no field or parameter {name!r}")

    @classmethod
    def for_notebook(cls, notebook: str, profile: str) -> RunConfig:
        """The config a notebook builds when run under `profile` with no other overrides: its
        parameters-cell defaults, then the profile's values. Later chapters use it to find an
        earlier chapter's results (`esr_run.chapter_run`)."""
        params = {**notebook_defaults(notebook), **notebook_parameters(profile, notebook)}
        own = {f.name for f in fields(cls)} - {"notebook", "params"}
        return cls(notebook=notebook, **{k.lower(): v for k, v in params.items()
                                         if k.lower() in own},
                   params={k: v for k, v in params.items() if k.lower() not in own})

    def to_dict(self) -> dict:
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> RunConfig:
        return cls(**data)

    @property
    def measures(self) -> bool:
        """True under a profile whose numbers are measurements (`cpu`, `paper`); the chapters'
        checks on results (targets, directions) run only then."""
        return self.profile in MEASURING_PROFILES

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
