"""The offline judge's score scale: a logistic map from an attempt's relevance to 0–100.

Relevance is the word-weighted mean cosine similarity between the prompt and the attempt's
sentences. The map is fitted on data by `offline_fit.fit_score_scale` (the embedded model's
answers to their own prompt against the same answers under another prompt); this module only
holds, applies, saves and loads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from esr_utils.paths import DATA_DIR

__all__ = ["ScoreScale", "SCALE_PATH", "fit_logistic"]

SCALE_PATH = DATA_DIR / "offline_judge_scale.json"


@dataclass(frozen=True)
class ScoreScale:
    """score = 100 · sigmoid(slope · relevance + intercept)."""

    slope: float
    intercept: float
    meta: dict | None = None

    def score(self, relevance):
        z = self.slope * np.asarray(relevance, dtype=float) + self.intercept
        return 100.0 / (1.0 + np.exp(-z))

    @property
    def midpoint(self) -> float:
        """The relevance that scores 50."""
        return -self.intercept / self.slope

    def save(self, path: str | Path = SCALE_PATH) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path = SCALE_PATH) -> ScoreScale:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; refit it with "
                                    "`python -m esr_utils.judging.offline_fit`")
        data = json.loads(path.read_text())
        return cls(slope=data["slope"], intercept=data["intercept"], meta=data.get("meta"))


def fit_logistic(x, y, *, l2: float = 1e-4, iters: int = 100) -> tuple[float, float]:
    """Slope and intercept of a 1-D logistic regression (Newton's method, small ridge).

    The ridge keeps the fit finite when the two classes do not overlap at all.

    >>> a, b = fit_logistic([0.1, 0.2, 0.3, 0.6, 0.7, 0.8], [0, 0, 1, 0, 1, 1])
    >>> a > 0 and 0.3 < -b / a < 0.6
    True
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    X = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-X @ w))
        grad = X.T @ (p - y) + l2 * np.array([w[0], 0.0]) * len(x)
        hess = (X.T * (p * (1 - p))) @ X + l2 * np.diag([1.0, 0.0]) * len(x)
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])
