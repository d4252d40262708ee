"""The paper's baselines as routers of the evaluation: kNN, MF and FORC over the encoder's embeddings.

The methods are the pure functions of `tagrouter.offline.baselines`; each predicts the answer
length with its own method and setting, as TagRouter does with its counts. A fit predicts every
setting of its grid at once (one neighbour search, one eigendecomposition) and keeps them per
set of queries asked.
"""
from __future__ import annotations

import numpy as np

from tagrouter.offline import baselines, sweep
from tagrouter.offline.prepare import Prepared
from tagrouter.offline.routers.base import Prediction, Router

KINDS = ("knn", "mf", "forc")


class FittedBaseline:
    """One baseline fitted on some rows; predictions for every setting, per set of queries."""

    def __init__(self, kind: str, prep: Prepared, rows: np.ndarray, ks: list[int]):
        suite = prep.suite
        self.kind, self.x, self.ks = kind, prep.embeddings, ks
        self.train = (prep.embeddings[rows], suite.scores[rows], suite.output_tokens[rows])
        self._cache: dict[bytes, dict[tuple, tuple[np.ndarray, np.ndarray]]] = {}

    def predict(self, setting: dict, rows: np.ndarray) -> Prediction:
        key = np.asarray(rows).tobytes()
        if key not in self._cache:
            train_x, train_y, train_length = self.train
            self._cache[key] = {tuple(s.items()): (p, length) for s, p, length in
                                baselines.predict_all(self.kind, train_x, train_y, self.x[rows], train_length, self.ks)}
        found = self._cache[key].get(tuple(setting.items()))
        if found is None:  # a fold's fit must answer for every setting of the whole train set's
            raise RuntimeError(f"{self.kind}: no prediction for setting {setting}")
        return Prediction(found[0].copy(), found[1].copy())


class EmbeddingBaseline(Router):
    """kNN (RouterBench), MF (RouteLLM-style) or FORC-style ridge regression on the embeddings."""

    def __init__(self, kind: str, name: str | None = None, knob_path: sweep.KnobPath = sweep.knob_path):
        if kind not in KINDS:
            raise ValueError(f"unknown baseline {kind!r}")
        super().__init__(name or kind, knob_path)
        self.kind = kind

    def _ks(self, prep: Prepared) -> list[int]:
        """kNN's k that the whole train set supports: every fold's fit answers for the same ones."""
        return baselines.knn_ks(len(prep.suite.rows("train")))

    def settings(self, prep: Prepared) -> list[dict]:
        if self.kind == "knn":
            return [{"k": k} for k in self._ks(prep)]
        return baselines.grid(self.kind, len(prep.suite.models))

    def fit(self, prep: Prepared, rows: np.ndarray) -> FittedBaseline:
        return FittedBaseline(self.kind, prep, rows, self._ks(prep))

    def complexity(self, setting: dict) -> tuple:
        return baselines.complexity(self.kind, setting)
