"""The offline judge's restart detector: for each sentence, does a new attempt start here?

Gradient-boosted decision trees (`tree_ensemble`) over features of the sentence and its place in
the response (`boundary_features`): prompt relevance before and after it over windows of one to
three sentences, the topic shift across it, how it relates to its neighbours, its similarity to
the paper's example restarts, and whether a hand-written `RESTART_PATTERNS` entry matches (a
cue, not the decision). Trees let the decision depend on combinations ("sounds like a restart
*and* the topic changes") without listing them. Trained on a labelled set of constructed
responses (`evalset`) by `offline_fit.fit_detector`, with the decision threshold chosen by
cross-validation over the training families only; the fitted trees ship in
`esr_utils/data/offline_judge_restarts.json`, checked against `WEIGHTS_SHA256`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esr_utils.judging.boundary_features import FEATURE_NAMES, sentence_features
from esr_utils.judging.embedding import Embedder
from esr_utils.judging.tree_ensemble import TreeEnsemble
from esr_utils.paths import DATA_DIR

__all__ = ["RestartDetector", "WEIGHTS_PATH", "WEIGHTS_SHA256", "FEATURE_NAMES",
           "sentence_features"]

WEIGHTS_PATH = DATA_DIR / "offline_judge_restarts.json"
# the shipped weights' SHA-256 (update it together with the file, see esr_utils/data/README.md)
WEIGHTS_SHA256 = "322de5719a5015d5bdbf55b07c561684c57990f6e5ba11337a8c1306f862de80"


@dataclass(frozen=True)
class RestartDetector:
    """Boosted trees over `FEATURE_NAMES`; a sentence is a restart when p ≥ `threshold`."""

    trees: TreeEnsemble
    threshold: float = 0.5
    meta: dict = field(default_factory=dict, compare=False)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        if X.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {X.shape[1]}; the "
                             "weights are from another feature set: retrain with "
                             "`python -m esr_utils.judging.offline_fit`")
        return self.trees.probabilities(X)

    def restarts(self, X: np.ndarray) -> np.ndarray:
        return self.probabilities(X) >= self.threshold

    def _decide(self, p: np.ndarray) -> list[bool]:
        """Threshold, then in a run of flagged sentences keep only those up to the most
        restart-like one: the sentences after it open the new attempt ("Wait, no. To add
        fractions, ..." flags both, but only "Wait, no." is the restart)."""
        flags = p >= self.threshold
        k = 0
        while k < len(p):
            if not flags[k]:
                k += 1
                continue
            end = k
            while end < len(p) and flags[end]:
                end += 1
            flags[k + int(np.argmax(p[k:end])) + 1:end] = False
            k = end
        return [bool(x) for x in flags]

    def flags(self, prompt: str, sentences: Sequence[str], embedder: Embedder) -> list[bool]:
        """For each sentence of a response: does a new attempt start there?"""
        return self._decide(self.probabilities(sentence_features(prompt, sentences, embedder)))

    def flags_many(self, responses: Sequence[tuple[str, Sequence[str]]],
                   embedder: Embedder) -> list[list[bool]]:
        """`flags` for many (prompt, sentences) pairs, with one pass of the trees over all."""
        X = [sentence_features(prompt, sentences, embedder) for prompt, sentences in responses]
        if not X:
            return []
        p = self.probabilities(np.concatenate(X))
        cuts = np.cumsum([len(x) for x in X])[:-1]
        return [self._decide(part) for part in np.split(p, cuts)]

    def to_json(self) -> str:
        data = {"trees": self.trees.to_dict(), "threshold": round(float(self.threshold), 6),
                "features": list(FEATURE_NAMES), "meta": self.meta}
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
        if tuple(d.get("features", ())) != FEATURE_NAMES:
            raise ValueError(f"{path} was trained on other features; retrain with "
                             "`python -m esr_utils.judging.offline_fit`")
        return cls(TreeEnsemble.from_dict(d["trees"]), float(d["threshold"]), d.get("meta", {}))
