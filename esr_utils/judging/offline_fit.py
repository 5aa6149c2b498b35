"""Fitting the offline judge on data: its score scale and its restart detector.

Both are fitted on the *calibration* half of the prompts (every other prompt); the other half
is kept for validation. `python -m esr_utils.judging.offline_fit` rewrites the two shipped
files (`offline_judge_scale.json`, `offline_judge_restarts.json`) and prints the detector's
SHA-256, which goes into `restart_detector.WEIGHTS_SHA256`. Seeded: rerunning reproduces them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from esr_utils.judging.answers import ANSWERS_PATH, load_answers
from esr_utils.judging.embedding import Embedder
from esr_utils.judging.evalset import BASE_FAMILIES, EvalItem, build_eval_set
from esr_utils.judging.offline import OfflineJudge
from esr_utils.judging.phrase_families import NEGATIVE_FAMILIES, RESTART_FAMILIES
from esr_utils.judging.restart_detector import RestartDetector, fit_weights, sentence_features
from esr_utils.judging.score_scale import ScoreScale, fit_logistic
from esr_utils.judging.segmenting import split_sentences
from esr_utils.judging.validation import item_rows

__all__ = ["split_prompts", "fit_score_scale", "training_matrix", "fit_detector",
           "family_folds", "cross_validate", "replace_detector", "fit_all",
           "DETECTOR_SETTINGS"]

# picked among a handful of settings (ridge, class weight, threshold, raw embeddings or not)
# by the leave-families-out numbers that appendix A2 reports, so those are slightly optimistic;
# the threshold trades missed restarts for false splits of single answers
DETECTOR_SETTINGS = {"l2": 1.0, "positive_weight": 1.0, "threshold": 0.7, "seed": 0}


def split_prompts(prompts: list[str]) -> tuple[list[str], list[str]]:
    """(calibration, validation) halves: every other prompt, in the shipped order."""
    return prompts[0::2], prompts[1::2]


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fit_score_scale(judge: OfflineJudge, answers: Sequence[dict], *, seed: int = 0) -> ScoreScale:
    """Logistic map from relevance to 0–100: each calibration answer under its own prompt
    (label 1) and under another calibration prompt (label 0)."""
    prompts = list(dict.fromkeys(a["prompt"] for a in answers))
    calib, _ = split_prompts(prompts)
    rows = [a for a in answers if a["prompt"] in set(calib)]
    rng = np.random.default_rng(seed)
    on, off = [], []
    for a in rows:
        sentences = judge.sentences(a["response"])
        on.append(judge.relevance(a["prompt"], sentences))
        others = [p for p in calib if p != a["prompt"]]
        off.append(judge.relevance(others[int(rng.integers(len(others)))], sentences))
    slope, intercept = fit_logistic(on + off, [1] * len(on) + [0] * len(off))
    meta = {"feature": judge.feature_name, "n_on_topic": len(on), "n_off_topic": len(off),
            "calibration_prompts": len(calib), "seed": seed,
            "answers_sha256": _sha256(ANSWERS_PATH), "embedding_model": judge.embedding_model}
    return ScoreScale(slope=slope, intercept=intercept, meta=meta)


def training_matrix(items: Sequence[EvalItem], embedder: Embedder):
    """(X, y, family per row): one row per sentence of every item."""
    embedder.encode([i.prompt for i in items] +
                    [i.response[s:e] for i in items for s, e in split_sentences(i.response)])
    X, y, fam = [], [], []
    for item in items:
        sentences = [item.response[s:e] for s, e in split_sentences(item.response)]
        X.append(sentence_features(item.prompt, sentences, embedder))
        y.extend(item.restart_sentences)
        fam.extend([item.family] * len(sentences))
    return np.concatenate(X), np.asarray(y, dtype=float), np.asarray(fam)


def fit_detector(X, y, *, meta: dict | None = None, **settings) -> RestartDetector:
    s = {**DETECTOR_SETTINGS, **settings}
    w, b, mean, scale = fit_weights(X, y, l2=s["l2"], positive_weight=s["positive_weight"])
    return RestartDetector(w, b, mean, scale, s["threshold"], meta={**(meta or {}), **s})


def family_folds(n_folds: int = 4, seed: int = 0) -> list[set[str]]:
    """Every family in exactly one fold; restart, negative and base families spread evenly."""
    rng = np.random.default_rng(seed)
    folds: list[set[str]] = [set() for _ in range(n_folds)]
    offset = 0
    for names in (list(RESTART_FAMILIES), list(NEGATIVE_FAMILIES), list(BASE_FAMILIES)):
        for k, name in enumerate(rng.permutation(names)):
            folds[(k + offset) % n_folds].add(str(name))
        offset += len(names)
    return folds


def cross_validate(answers: Sequence[dict], judge: OfflineJudge, *, n_folds: int = 4,
                   eval_prompts: Sequence[str] | None = None, n_train_prompts: int | None = None,
                   seed: int = 0, progress: bool = False
                   ) -> tuple[list[EvalItem], list, list[dict]]:
    """Leave-families-out validation: for each fold, train the detector on the other folds'
    families (calibration prompts, the first `n_train_prompts` of them) and judge this fold's
    families (validation prompts, or `eval_prompts`).

    Returns (held-out items, their verdicts, per-item rows with the fold added)."""
    from tqdm.auto import tqdm

    prompts = list(dict.fromkeys(a["prompt"] for a in answers))
    calib, valid = split_prompts(prompts)
    train_items = build_eval_set(answers, calib[:n_train_prompts], seed=seed)
    test_items = build_eval_set(answers, list(eval_prompts or valid), seed=seed + 1)
    X, y, fam = training_matrix(train_items, judge.embedder)
    held, verdicts, rows = [], [], []
    for f, fold in enumerate(tqdm(family_folds(n_folds, seed), desc="family folds",
                                  disable=not progress)):
        detector = fit_detector(X[~np.isin(fam, list(fold))], y[~np.isin(fam, list(fold))])
        fold_judge = replace_detector(judge, detector)
        items = [i for i in test_items if i.family in fold]
        v = fold_judge.judge_many([i.to_input() for i in items])
        held += items
        verdicts += v
        rows += [{**r, "fold": f} for r in item_rows(items, v)]
    return held, verdicts, rows


def replace_detector(judge: OfflineJudge, detector) -> OfflineJudge:
    """The same judge (scale, penalties, shared embedder) with another restart detector."""
    return OfflineJudge(judge.scale, detector=detector, repetition_weight=judge.repetition_weight,
                        quality_power=judge.quality_power, name=judge.name,
                        embedder=judge.embedder)


def fit_all(seed: int = 0, embedder: Embedder | None = None) -> tuple[ScoreScale, RestartDetector]:
    """The shipped fits: score scale, then the detector on all families (calibration prompts)."""
    answers = load_answers()
    embedder = embedder or Embedder()
    bootstrap = OfflineJudge(ScoreScale(1.0, 0.0), detector=_NoRestarts(), embedder=embedder)
    scale = fit_score_scale(bootstrap, answers, seed=seed)
    calib, _ = split_prompts(list(dict.fromkeys(a["prompt"] for a in answers)))
    items = build_eval_set(answers, calib, seed=seed)
    X, y, _ = training_matrix(items, embedder)
    meta = {"n_items": len(items), "n_sentences": int(len(y)), "n_restart_sentences": int(y.sum()),
            "calibration_prompts": len(calib), "answers_sha256": _sha256(ANSWERS_PATH),
            "command": "python -m esr_utils.judging.offline_fit"}
    return scale, fit_detector(X, y, meta=meta, seed=seed)


class _NoRestarts:
    def flags(self, prompt, sentences, embedder=None):
        return [False] * len(sentences)


if __name__ == "__main__":
    scale, detector = fit_all()
    print(scale.save(), scale)
    print("restart detector SHA-256:", detector.save())
