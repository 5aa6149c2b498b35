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

from esr_utils.judging.answers import (
    ANSWERS_PATH,
    MODEL_ANSWERS_PATH,
    load_answers,
    load_model_answers,
)
from esr_utils.judging.embedding import Embedder
from esr_utils.judging.evalset import BASE_FAMILIES, EvalItem, build_eval_set
from esr_utils.judging.offline import OfflineJudge
from esr_utils.judging.phrase_families import NEGATIVE_FAMILIES, RESTART_FAMILIES
from esr_utils.judging.restart_detector import RestartDetector, sentence_features
from esr_utils.judging.score_scale import ScoreScale, fit_logistic
from esr_utils.judging.segmenting import group_attempts, split_sentences
from esr_utils.judging.tree_ensemble import fit_trees
from esr_utils.judging.validation import item_rows

__all__ = ["split_prompts", "fit_score_scale", "training_matrix", "fit_detector",
           "family_folds", "cross_validate", "replace_detector", "fit_all", "choose_threshold",
           "count_attempts", "THRESHOLDS"]

# candidate decision thresholds; `choose_threshold` picks one by cross-validation over the
# training families only, so held-out numbers never steer it
THRESHOLDS = tuple(np.round(np.arange(0.1, 0.91, 0.05), 2))


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
    """(X, y, family per row, item index per row): one row per sentence of every item."""
    embedder.encode([i.prompt for i in items] +
                    [i.response[s:e] for i in items for s, e in split_sentences(i.response)])
    X, y, fam, owner = [], [], [], []
    for k, item in enumerate(items):
        sentences = [item.response[s:e] for s, e in split_sentences(item.response)]
        X.append(sentence_features(item.prompt, sentences, embedder))
        y.extend(item.restart_sentences)
        fam.extend([item.family] * len(sentences))
        owner.extend([k] * len(sentences))
    return np.concatenate(X), np.asarray(y, dtype=float), np.asarray(fam), np.asarray(owner)


def count_attempts(item: EvalItem, flags: Sequence[bool]) -> int:
    """How many attempts the judge would find in `item` with these restart flags."""
    return len(group_attempts(item.response, split_sentences(item.response), flags))


def choose_threshold(items: Sequence[EvalItem], X, y, fam, owner, *, n_folds: int = 3,
                     seed: int = 0) -> tuple[float, dict]:
    """The threshold that gets the most attempt counts right on families left out of training,
    by cross-validation *within* the given (training) items' families: multi-attempt and
    single-attempt items weigh half each, so neither missed nor spurious splits are free.

    Returns (threshold, {threshold: balanced accuracy})."""
    names = sorted(set(fam))
    order = np.random.default_rng(seed).permutation(names)
    p = np.zeros(len(y))
    for f in range(n_folds):
        out = np.isin(fam, [str(x) for x in order[f::n_folds]])
        p[out] = fit_trees(X[~out], y[~out], seed=seed).probabilities(X[out])
    multi = np.array([i.n_attempts > 1 for i in items])
    rows = [np.flatnonzero(owner == k) for k in range(len(items))]
    scores = {}
    for t in THRESHOLDS:
        right = np.array([count_attempts(i, p[r] >= t) == i.n_attempts
                          for i, r in zip(items, rows)])
        scores[float(t)] = 0.5 * right[multi].mean() + 0.5 * right[~multi].mean()
    best = max(scores, key=lambda t: (round(scores[t], 6), -abs(t - 0.5)))
    return best, scores


def fit_detector(items: Sequence[EvalItem], X, y, fam, owner, *, meta: dict | None = None,
                 seed: int = 0) -> RestartDetector:
    """Trees on all rows, threshold by inner cross-validation over these items' families."""
    threshold, inner = choose_threshold(items, X, y, fam, owner, seed=seed)
    return RestartDetector(fit_trees(X, y, seed=seed), threshold,
                           meta={**(meta or {}), "seed": seed, "inner_cv": inner})


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
    model_answers = load_model_answers("train")
    if n_train_prompts is not None:  # fewer training prompts: the same share of model answers
        model_answers = model_answers[: len(model_answers) * n_train_prompts // len(calib)]
    train_items = build_eval_set(answers, calib[:n_train_prompts], seed=seed,
                                 model_answers=model_answers)
    test_items = build_eval_set(answers, list(eval_prompts or valid), seed=seed + 1,
                                model_answers=load_model_answers("val"))
    X, y, fam, owner = training_matrix(train_items, judge.embedder)
    held, verdicts, rows = [], [], []
    for f, fold in enumerate(tqdm(family_folds(n_folds, seed), desc="family folds",
                                  disable=not progress)):
        keep = [k for k, i in enumerate(train_items) if i.family not in fold]
        m = np.isin(owner, keep)
        renumber = np.full(len(train_items), -1)
        renumber[keep] = np.arange(len(keep))
        detector = fit_detector([train_items[k] for k in keep], X[m], y[m], fam[m],
                                renumber[owner[m]], seed=seed)
        fold_judge = replace_detector(judge, detector)
        items = [i for i in test_items if i.family in fold]
        v = fold_judge.judge_many([i.to_input() for i in items])
        held += items
        verdicts += v
        rows += [{**r, "fold": f, "threshold": detector.threshold} for r in item_rows(items, v)]
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
    items = build_eval_set(answers, calib, seed=seed, model_answers=load_model_answers("train"))
    X, y, fam, owner = training_matrix(items, embedder)
    meta = {"n_items": len(items), "n_sentences": int(len(y)), "n_restart_sentences": int(y.sum()),
            "calibration_prompts": len(calib), "answers_sha256": _sha256(ANSWERS_PATH),
            "model_answers_sha256": _sha256(MODEL_ANSWERS_PATH),
            "command": "python -m esr_utils.judging.offline_fit"}
    return scale, fit_detector(items, X, y, fam, owner, meta=meta, seed=seed)


class _NoRestarts:
    def flags(self, prompt, sentences, embedder=None):
        return [False] * len(sentences)


if __name__ == "__main__":
    scale, detector = fit_all()
    print(scale.save(), scale)
    print("restart detector SHA-256:", detector.save())
