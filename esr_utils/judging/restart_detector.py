"""The offline judge's restart detector: for each sentence, does a new attempt start here?

A logistic regression over features of the sentence and its place in the response, computed
from MiniLM sentence embeddings: the relevance to the prompt of the sentence and of the text
before and after it, the topic shift between them, how the sentence relates to its
neighbours, the similarity of the sentence and of its first word pieces (where "Wait,",
"Sorry," or "Hmm." sit) to the paper's example restarts, and whether one of the hand-written
`RESTART_PATTERNS` matches (a feature, not the decision); plus all pairwise products of these,
so a linear model can say "restart-like *and* the topic changes". The raw 384-d embeddings
were tried as features too and generalised worse to held-out phrase families (appendix A2). It is
trained on a labelled set of constructed responses (`evalset`) by `offline_fit.fit_detector`; the
weights ship in `esr_utils/data/offline_judge_restarts.json`, checked against `WEIGHTS_SHA256`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esr_utils.judging.embedding import Embedder, count_words
from esr_utils.judging.segmenting import RESTART_EXAMPLES, is_restart
from esr_utils.paths import DATA_DIR

__all__ = ["RestartDetector", "WEIGHTS_PATH", "WEIGHTS_SHA256", "SCALAR_FEATURES",
           "sentence_features", "fit_weights", "N_FEATURES"]

WEIGHTS_PATH = DATA_DIR / "offline_judge_restarts.json"
# the shipped weights' SHA-256 (update it together with the file, see esr_utils/data/README.md)
WEIGHTS_SHA256 = "eb939a4d046ae827514af1044ab4e58a75bef77837854dd74aadba926cef4731"
CONTEXT = 3  # sentences read on each side of a candidate
SCALAR_FEATURES = ("rel_self", "rel_before", "rel_after", "shift", "topic_cos", "self_before",
                   "self_after", "self_prev", "has_before", "has_after", "position", "is_last",
                   "log_words", "pattern", "example_full", "example_head", "rel_attempt")


def _unit_mean(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if len(vectors) == 0:
        return np.zeros(vectors.shape[1] if vectors.ndim == 2 else 384)
    m = (vectors * weights[:, None]).sum(0)
    return m / (np.linalg.norm(m) + 1e-12)


_PAIRS = np.triu_indices(len(SCALAR_FEATURES))
N_FEATURES = len(SCALAR_FEATURES) + len(_PAIRS[0])


def sentence_features(prompt: str, sentences: Sequence[str], embedder: Embedder) -> np.ndarray:
    """One row per sentence: the scalar features, then their pairwise products."""
    n = len(sentences)
    if n == 0:
        return np.zeros((0, N_FEATURES))
    vecs = [embedder.get(s) for s in sentences]
    full = np.stack([v.full for v in vecs])
    head = np.stack([v.head for v in vecs])
    p = embedder.get(prompt).full
    examples = embedder.full(list(RESTART_EXAMPLES))
    rel = full @ p
    words = np.array([max(1, count_words(s)) for s in sentences], dtype=float)
    rows = []
    for i in range(n):
        b = slice(max(0, i - CONTEXT), i)
        a = slice(i + 1, min(n, i + 1 + CONTEXT))
        wb, wa = words[b], words[a]
        rel_b = float((rel[b] * wb).sum() / wb.sum()) if i > 0 else 0.0
        rel_a = float((rel[a] * wa).sum() / wa.sum()) if i < n - 1 else 0.0
        mb, ma = _unit_mean(full[b], wb), _unit_mean(full[a], wa)
        rel_att = float((rel[:i] * words[:i]).sum() / words[:i].sum()) if i > 0 else 0.0
        scalars = [
            rel[i], rel_b, rel_a, rel_a - rel_b, float(mb @ ma), float(full[i] @ mb),
            float(full[i] @ ma), float(full[i] @ full[i - 1]) if i > 0 else 0.0,
            float(i > 0), float(i < n - 1), i / max(1, n - 1), float(i == n - 1),
            np.log1p(words[i]), float(is_restart(sentences[i])),
            float((examples @ full[i]).max()), float((examples @ head[i]).max()), rel_att,
        ]
        rows.append(scalars)
    S = np.asarray(rows, dtype=float)
    return np.concatenate([S, (S[:, :, None] * S[:, None, :])[:, _PAIRS[0], _PAIRS[1]]], axis=1)


def fit_weights(X: np.ndarray, y: np.ndarray, *, l2: float = 1.0,
                positive_weight: float = 1.0) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression on standardised features (L-BFGS).

    Returns (weights, bias, feature mean, feature scale)."""
    from scipy.optimize import minimize

    mean = X.mean(0)
    scale = X.std(0) + 1e-6
    Z = (X - mean) / scale
    sw = np.where(y > 0, positive_weight, 1.0)
    sw = sw / sw.mean()

    def loss(theta):
        w, b = theta[:-1], theta[-1]
        z = Z @ w + b
        # log(1 + e^z) - y z, computed stably
        nll = (sw * (np.logaddexp(0.0, z) - y * z)).mean()
        g = sw * (1.0 / (1.0 + np.exp(-z)) - y) / len(y)
        return nll + 0.5 * l2 * (w @ w) / len(y), np.append(Z.T @ g + l2 * w / len(y), g.sum())

    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000})
    return res.x[:-1], float(res.x[-1]), mean, scale


@dataclass(frozen=True)
class RestartDetector:
    """Weights over standardised features; a sentence is a restart when p ≥ `threshold`."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float = 0.5
    meta: dict = field(default_factory=dict, compare=False)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        z = ((X - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def restarts(self, X: np.ndarray) -> np.ndarray:
        return self.probabilities(X) >= self.threshold

    def flags(self, prompt: str, sentences: Sequence[str], embedder: Embedder) -> list[bool]:
        """For each sentence of a response: does a new attempt start there?"""
        return [bool(x) for x in self.restarts(sentence_features(prompt, sentences, embedder))]

    def to_json(self) -> str:
        data = {"weights": self.weights.round(6).tolist(), "bias": round(self.bias, 6),
                "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "threshold": self.threshold, "meta": self.meta}
        return json.dumps(data, sort_keys=True) + "\n"

    def save(self, path: str | Path = WEIGHTS_PATH) -> str:
        """Write the weights; returns the file's SHA-256."""
        text = self.to_json()
        Path(path).write_text(text)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_PATH, *, sha256: str | None = WEIGHTS_SHA256):
        """Load weights, checking their SHA-256 (pass `sha256=None` for a file you trained)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; retrain it with "
                                    "`python -m esr_utils.judging.offline_fit`")
        blob = path.read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if sha256 is not None and digest != sha256:
            raise ValueError(f"{path} has SHA-256 {digest}, expected {sha256}; retrain with "
                             "`python -m esr_utils.judging.offline_fit` and update "
                             "restart_detector.WEIGHTS_SHA256")
        d = json.loads(blob)
        return cls(np.asarray(d["weights"]), float(d["bias"]), np.asarray(d["mean"]),
                   np.asarray(d["scale"]), float(d["threshold"]), d.get("meta", {}))
