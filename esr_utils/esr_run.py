"""`EsrRun`: what chapter 2's protocol produced, stored as JSON and JSONL, reloaded without a model.

A run folder holds `run.json` (settings, selected latents, labels, thresholds with their search
traces, sweep levels, the verdict ids of each condition, metrics) and one folder per condition
(`calibration/`, `steered/`, `baseline/`, `sweep/`) with the generations (`trials.jsonl`) and
verdicts (`verdicts.jsonl`, keyed by trial, judge and judge code). `EsrRun.load` reads the stored
records back in the stored order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from esr_utils.config import RunConfig
from esr_utils.metrics import Mean, Rate, mean_ci, summarize, trial_metrics
from esr_utils.paths import RESULTS_DIR
from esr_utils.results import ResultsStore
from esr_utils.threshold_search import ThresholdEstimate

__all__ = ["ProtocolSettings", "EsrRun", "CONDITIONS", "serialisable_summary",
           "first_scores_by_latent", "sweep_summary", "sweep_levels", "chapter_run"]

CONDITIONS = ("steered", "baseline", "sweep")
# the paper code's reading (every prompt token), the same without position 0, the paper's text
RELEVANCE_READINGS = ("prompt-tokens", "prompt-tokens-after-first", "response-top-k")


@dataclass(frozen=True)
class ProtocolSettings:
    """Everything chapter 2's protocol depends on besides the model, SAE, judge and prompts.

    `target_score` is on the judge's 0–100 scale. Token limits of None use the model spec's.
    """

    n_latents: int = 16
    candidate_multiplier: int = 3
    relevance: str = "prompt-tokens"
    concreteness: str = "proxy"
    target_score: float = 30.0
    calibration_steps: int = 10
    calibration_samples: int = 1
    # per-model exceptions to `calibration_samples` (the paper's code averages 5 prompts per
    # bisection step for Llama-3.3-70B and 1 for the others)
    calibration_samples_by_model: dict[str, int] = field(default_factory=dict)
    calibration_max_new_tokens: int | None = None
    noise: str = "beta"
    verification_samples: int = 0
    max_retries: int = 3
    n_prompts_per_latent: int = 5
    max_new_tokens: int | None = None
    sweep_levels: int = 10
    sweep_latents: int | None = None
    sweep_prompts_per_latent: int = 5
    batch_size: int | str = 8  # or "auto"
    seed: int = 0

    def __post_init__(self):
        if self.relevance not in RELEVANCE_READINGS:
            raise ValueError(f"RELEVANCE must be one of {RELEVANCE_READINGS}, "
                             f"got {self.relevance!r}")
        if not (self.concreteness in ("proxy", "none") or self.concreteness.startswith("llm:")):
            raise ValueError(f"CONCRETENESS must be 'proxy', 'none' or 'llm:<model spec>', "
                             f"got {self.concreteness!r}")
        if not 0 < self.target_score < 100:
            raise ValueError(f"TARGET_SCORE must lie in (0, 100), got {self.target_score}")
        object.__setattr__(self, "calibration_samples_by_model",
                           dict(self.calibration_samples_by_model))  # a plain, serialisable dict
        for model, n in self.calibration_samples_by_model.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"CALIBRATION_SAMPLES_BY_MODEL[{model!r}] must be an int ≥ 1, "
                                 f"got {n!r}")
        for name in ("n_latents", "candidate_multiplier", "calibration_samples",
                     "n_prompts_per_latent", "sweep_levels", "sweep_prompts_per_latent",
                     "batch_size"):
            if name == "batch_size" and self.batch_size == "auto":
                continue  # sized from free memory when generating (esr_utils.batching)
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be ≥ 1, got {getattr(self, name)}")

    def samples_for(self, model: str) -> int:
        """Answers averaged per bisection step when calibrating `model`."""
        return self.calibration_samples_by_model.get(model, self.calibration_samples)

    @classmethod
    def from_config(cls, cfg) -> ProtocolSettings:
        """Settings from a chapter's `RunConfig` (its params named like these fields)."""
        names = {f.name for f in fields(cls)} - {"seed"}
        return cls(seed=cfg.seed, **{k: v for k, v in cfg.params.items() if k in names})


def _finite(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def serialisable_summary(records) -> dict:
    """`metrics.summarize` with rates and means as plain dicts (k, n, p, ci / mean, sem, ci);
    undefined values (NaN) become None, so the JSON is standard and compares equal."""
    def plain(v):
        if isinstance(v, Rate):
            return {"k": v.k, "n": v.n, "p": _finite(v.p), "ci": [_finite(c) for c in v.ci]}
        if isinstance(v, Mean):
            return {"mean": _finite(v.mean), "sem": _finite(v.sem), "n": v.n,
                    "ci": [_finite(c) for c in v.ci]}
        return v
    return {k: plain(v) for k, v in summarize(records).items()}


@dataclass
class EsrRun:
    """Chapter 2's protocol for one model: latents, thresholds, trials of each condition, metrics.

    `records[condition]` are judged trial records (prompt, latent, boost, seed, response,
    attempts, ...); `thresholds[k]` holds latent k's threshold and search trace.
    """

    model: str
    layer: int
    judge: str
    settings: ProtocolSettings
    prompts: list[str]
    latents: list[int]
    labels: dict[int, str]
    funnel: dict[str, int]
    prior: tuple[float, float]
    bounds: tuple[float, float]
    thresholds: dict[int, ThresholdEstimate]
    calibration_counts: dict[str, int] = field(default_factory=dict)
    sweep_levels: list[float] = field(default_factory=list)
    records: dict[str, list[dict]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None

    def threshold(self, latent_id: int) -> float:
        return self.thresholds[latent_id].threshold

    def verdict_ids(self, condition: str) -> list[str]:
        return [r["verdict_id"] for r in self.records.get(condition, [])]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "layer": self.layer, "judge": self.judge,
            "settings": asdict(self.settings), "prompts": self.prompts, "latents": self.latents,
            "labels": {str(k): v for k, v in self.labels.items()}, "funnel": self.funnel,
            "prior": list(self.prior), "bounds": list(self.bounds),
            "thresholds": [self.thresholds[k].to_dict() for k in self.latents],
            "calibration_counts": self.calibration_counts, "sweep_levels": self.sweep_levels,
            "verdict_ids": {c: self.verdict_ids(c) for c in self.records},
            "metrics": self.metrics,
        }

    def save(self, directory: str | Path | None = None) -> Path:
        """Write `run.json`; the condition records are already in their JSONL stores."""
        directory = Path(directory or self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "run.json"
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        self.directory = directory
        return path

    @classmethod
    def load(cls, directory: str | Path) -> EsrRun:
        """The stored run, records in stored order, without touching a model."""
        directory = Path(directory)
        path = directory / "run.json"
        if not path.exists():
            raise FileNotFoundError(f"no run.json in {directory}: run chapter 2 first (or "
                                    "point at its results folder for this model)")
        data = json.loads(path.read_text())
        records = {}
        for condition, ids in data["verdict_ids"].items():
            store = ResultsStore(directory / condition, "verdicts", key="verdict_id")
            missing = [i for i in ids if store.get(i) is None]
            if missing:
                raise FileNotFoundError(f"{len(missing)} {condition} records listed in {path} "
                                        f"are missing from {store.path}")
            records[condition] = [store.get(i) for i in ids]
        estimates = [ThresholdEstimate.from_dict(t) for t in data["thresholds"]]
        return cls(
            model=data["model"], layer=data["layer"], judge=data["judge"],
            settings=ProtocolSettings(**data["settings"]), prompts=data["prompts"],
            latents=[int(k) for k in data["latents"]],
            labels={int(k): v for k, v in data["labels"].items()}, funnel=data["funnel"],
            prior=tuple(data["prior"]), bounds=tuple(data["bounds"]),
            thresholds={t.latent_id: t for t in estimates},
            calibration_counts=data["calibration_counts"], sweep_levels=data["sweep_levels"],
            records=records, metrics=data["metrics"], directory=directory,
        )


def chapter_run(profile: str, model: str, notebook: str = "02_esr_across_models") -> EsrRun:
    """The run `notebook` (chapter 2) stored for `model` under `profile`'s settings, for later
    chapters to replay. Fails naming the command to run when that chapter has not run yet."""
    directory = RESULTS_DIR / profile / notebook / RunConfig.for_notebook(notebook, profile).key()
    if not (directory / model / "run.json").exists():
        raise FileNotFoundError(
            f"{notebook} has no stored run for {model!r} under the {profile!r} profile "
            f"(looked in {directory / model}): run `python -m esr_utils.runner --profile "
            f"{profile} --only {notebook}` first, with the profile's settings unchanged")
    return EsrRun.load(directory / model)


def first_scores_by_latent(run: EsrRun, condition: str = "steered") -> dict[int, Mean]:
    """Per latent, the mean first-attempt score at its threshold on fresh seeds (the search never
    used them): its verification samples and its trials in `condition`, with a 95% interval."""
    by_latent: dict[int, list] = {k: [100 * s for s in run.thresholds[k].verification]
                                  for k in run.latents}
    for r in run.records[condition]:
        if r["latent_id"] in by_latent:
            by_latent[r["latent_id"]].append(trial_metrics(r)["first_score"])
    return {k: mean_ci(v) for k, v in by_latent.items()}


def sweep_summary(run: EsrRun) -> list[dict]:
    """Per sweep level: the boost, its normalised value (b − mean)/σ and the metrics."""
    _, mean, std = sweep_levels([run.threshold(k) for k in run.latents], 2)
    rows = []
    for level in run.sweep_levels:
        s = summarize([r for r in run.records["sweep"] if r["boost"] == level])
        rows.append({"boost": level, "normalised": (level - mean) / std,
                     "multi_attempt_rate": s["multi_attempt_rate"], "esr_rate": s["esr_rate"],
                     "improvement_rate": s["improvement_rate"],
                     "mean_first_score": s["mean_first_score"], "n": s["n_valid"]})
    return rows


def sweep_levels(thresholds, n_levels: int) -> tuple[list[float], float, float]:
    """`n_levels` shared boosts from mean − 3σ to mean + 3σ of the thresholds, clipped at 0.

    σ is the population standard deviation (ddof=0), as in the paper's code. If every threshold
    is the same (σ = 0, e.g. a search too short to separate latents) σ is taken as mean / 3, so
    the levels run from 0 to twice the mean; the returned σ says which was used.

    >>> sweep_levels([1.0, 3.0], 3)
    ([0.0, 2.0, 5.0], 2.0, 1.0)
    """
    values = np.asarray(list(thresholds), dtype=float)
    mean, std = float(values.mean()), float(values.std(ddof=0))
    if std == 0:
        std = mean / 3
    if not std > 0:
        raise ValueError(f"cannot place sweep levels around thresholds {values.tolist()}")
    levels = np.clip(np.linspace(mean - 3 * std, mean + 3 * std, n_levels), 0, None)
    return [round(float(b), 2) for b in levels], mean, std
