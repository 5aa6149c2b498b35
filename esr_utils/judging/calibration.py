"""The offline judge's score scale: a logistic map from prompt–passage similarity to 0–100.

Fitted on data, not guessed: the embedded model's own answers to a prompt (label 1) against its
answers to other prompts (label 0), on a held-in half of the prompts (`calibration_prompts`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from esr_utils.paths import DATA_DIR

__all__ = ["Calibration", "CALIBRATION_PATH", "fit_logistic", "fit_from_answers", "split_prompts"]

CALIBRATION_PATH = DATA_DIR / "offline_judge_calibration.json"


@dataclass(frozen=True)
class Calibration:
    """score = 100 · sigmoid(slope · similarity + intercept).

    `restart_threshold`: a short sentence whose similarity to one of the example restarts
    reaches this is a restart (None turns the semantic test off).
    """

    slope: float
    intercept: float
    restart_threshold: float | None = None
    meta: dict | None = None

    def score(self, similarity):
        z = self.slope * np.asarray(similarity, dtype=float) + self.intercept
        return 100.0 / (1.0 + np.exp(-z))

    @property
    def midpoint(self) -> float:
        """The similarity that scores 50."""
        return -self.intercept / self.slope

    def save(self, path: str | Path = CALIBRATION_PATH) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path = CALIBRATION_PATH) -> "Calibration":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; refit it with "
                                    "`python -m esr_utils.judging.calibration`")
        data = json.loads(path.read_text())
        return cls(slope=data["slope"], intercept=data["intercept"],
                   restart_threshold=data.get("restart_threshold"), meta=data.get("meta"))


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


def split_prompts(prompts: list[str]) -> tuple[list[str], list[str]]:
    """(calibration, validation) halves: every other prompt, in the shipped order.

    The offline judge is calibrated on one half and validated on the other, so its validation
    numbers are not measured on the prompts that set its scale.
    """
    return prompts[0::2], prompts[1::2]


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def fit_from_answers(judge=None, *, seed: int = 0) -> Calibration:
    """Refit the calibration from the shipped answers (calibration half of the prompts only)."""
    from esr_utils.judging.answers import ANSWERS_PATH, load_answers
    from esr_utils.judging.offline import OfflineJudge

    judge = judge or OfflineJudge(calibration=Calibration(1.0, 0.0))
    # no splitting while fitting: the answers are scored whole
    answers = load_answers()
    prompts = list(dict.fromkeys(a["prompt"] for a in answers))
    calib_prompts, _ = split_prompts(prompts)
    rows = [a for a in answers if a["prompt"] in set(calib_prompts)]
    rng = np.random.default_rng(seed)
    on = [judge.similarity(a["prompt"], a["response"]) for a in rows]
    off = []
    for a in rows:  # one mismatched pairing per answer: the same answer under another prompt
        others = [p for p in calib_prompts if p != a["prompt"]]
        off.append(judge.similarity(others[rng.integers(len(others))], a["response"]))
    slope, intercept = fit_logistic(on + off, [1] * len(on) + [0] * len(off))
    # restart threshold: the highest similarity to an example restart that any short sentence of
    # the ordinary answers reaches, so no sentence of the calibration answers would split
    sentence_sims = judge.restart_similarities([a["response"] for a in rows])
    meta = {"feature": judge.feature_name, "n_on_topic": len(on), "n_off_topic": len(off),
            "calibration_prompts": len(calib_prompts), "seed": seed,
            "n_short_sentences": len(sentence_sims),
            "answers_sha1": _sha1(ANSWERS_PATH), "embedding_model": judge.embedding_model}
    return Calibration(slope=slope, intercept=intercept,
                       restart_threshold=float(max(sentence_sims)) + 1e-6, meta=meta)


if __name__ == "__main__":
    cal = fit_from_answers()
    print(cal.save(), cal)
