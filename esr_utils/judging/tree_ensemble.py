"""Boosted decision trees as plain arrays: fitted with scikit-learn, applied with numpy.

The restart detector's classifier is a gradient-boosted tree ensemble. scikit-learn (already
installed with sentence-transformers) fits it; the fitted trees are copied into flat arrays so
that the shipped weights are a small JSON file and applying them needs only numpy: no pickle,
and no dependence on a scikit-learn version at judging time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TreeEnsemble", "fit_trees", "TREE_SETTINGS"]

# a few hundred shallow trees; chosen once on the training families only (offline_fit)
TREE_SETTINGS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15,
                 "min_samples_leaf": 20, "l2_regularization": 0.0}


@dataclass(frozen=True)
class TreeEnsemble:
    """All trees' nodes in flat arrays; node k of a tree starting at `roots[t]` is row
    `roots[t] + k`. A row goes left when feature ≤ threshold; leaves carry their value."""

    feature: np.ndarray  # int, -1 at leaves
    threshold: np.ndarray
    left: np.ndarray  # absolute row index of the left child (leaves: themselves)
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float
    depth: int

    def decision(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's log-odds for each row of `X`."""
        X = np.asarray(X, dtype=float)
        if len(X) == 0:
            return np.zeros(0)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.depth):  # every path is at most `depth` steps long
            f = self.feature[node]
            leaf = f < 0
            go_left = X[rows, np.where(leaf, 0, f)] <= self.threshold[node]
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return self.baseline + self.value[node].sum(axis=1)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(X)))

    def to_dict(self) -> dict:
        return {"feature": self.feature.tolist(), "threshold": self.threshold.round(8).tolist(),
                "left": self.left.tolist(), "right": self.right.tolist(),
                "value": self.value.round(8).tolist(), "roots": self.roots.tolist(),
                "baseline": round(float(self.baseline), 8), "depth": self.depth}

    @classmethod
    def from_dict(cls, d: dict) -> TreeEnsemble:
        return cls(np.asarray(d["feature"], dtype=int), np.asarray(d["threshold"], dtype=float),
                   np.asarray(d["left"], dtype=int), np.asarray(d["right"], dtype=int),
                   np.asarray(d["value"], dtype=float), np.asarray(d["roots"], dtype=int),
                   float(d["baseline"]), int(d["depth"]))

    @classmethod
    def from_sklearn(cls, model) -> TreeEnsemble:
        """Copy a fitted binary `HistGradientBoostingClassifier` (numeric features, no missing
        values) into arrays."""
        feats, thr, left, right, val, roots, depth = [], [], [], [], [], [], 1
        offset = 0
        for (tree,) in model._predictors:  # one tree per boosting round for a binary task
            nodes = tree.nodes
            leaf = nodes["is_leaf"].astype(bool)
            k = np.arange(len(nodes))
            feats.append(np.where(leaf, -1, nodes["feature_idx"]).astype(int))
            thr.append(np.where(leaf, 0.0, nodes["num_threshold"]))
            left.append(np.where(leaf, k, nodes["left"]) + offset)
            right.append(np.where(leaf, k, nodes["right"]) + offset)
            val.append(np.where(leaf, nodes["value"], 0.0))
            roots.append(offset)
            depth = max(depth, int(nodes["depth"].max()) + 1)
            offset += len(nodes)
        return cls(np.concatenate(feats), np.concatenate(thr), np.concatenate(left),
                   np.concatenate(right), np.concatenate(val), np.asarray(roots, dtype=int),
                   float(np.ravel(model._baseline_prediction)[0]), depth)


def fit_trees(X: np.ndarray, y: np.ndarray, *, seed: int = 0, **settings) -> TreeEnsemble:
    """Fit boosted trees (log loss) on (X, y) and return them as arrays."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(**{**TREE_SETTINGS, **settings}, random_state=seed,
                                           early_stopping=False)
    model.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=int))
    return TreeEnsemble.from_sklearn(model)
