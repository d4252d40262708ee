"""The paper's baselines as pure functions over embeddings (ROUTING.md, section 4).

Each predicts a score per (query, model) from the query's encoder embedding; the decision rule
and the knob sweep are the same as TagRouter's. Each has one hyper-parameter grid, searched on
`valid` exactly as TagRouter's knobs are:
- kNN (RouterBench): mean score of the k most similar train queries (cosine); k.
- FORC-style: one ridge regression per model from embedding to score; the penalty alpha.
- MF (RouteLLM-style): score = <P x_q, v_m> + b_m, a rank-r factorisation of (query, model),
  fitted by reduced-rank ridge regression (least squares, then the best rank-r projection
  of the fitted scores); r and alpha.
"""
from __future__ import annotations

import numpy as np

KNN_KS = (3, 5, 10, 20, 30, 50, 100, 200)
RIDGE_ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
MF_RANKS = (1, 2, 4, 8, 16)


def knn_ks(train_size: int, ks=KNN_KS) -> list[int]:
    """The k of the grid that a train set of `train_size` queries supports (all of it when none does)."""
    return [k for k in ks if k <= train_size] or [train_size]


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, ks=None) -> dict[int, np.ndarray]:
    """k -> [Q, M] mean train score of each query's k nearest train queries, for every k at once
    (default: `knn_ks` of this train set). A k above the train set's size averages all of it, so that
    a fit on a fold answers for every k of the fit on the whole train set."""
    ks = knn_ks(len(train_x)) if ks is None else list(ks)
    top = min(max(ks), len(train_x))
    sims = x @ train_x.T
    nearest = np.argpartition(-sims, top - 1, axis=1)[:, :top] if top < sims.shape[1] else \
        np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    order = np.take_along_axis(sims, nearest, axis=1).argsort(axis=1)[:, ::-1]
    nearest = np.take_along_axis(nearest, order, axis=1)
    running = np.cumsum(train_y[nearest], axis=1)  # [Q, top, M]
    return {k: running[:, min(k, top) - 1] / min(k, top) for k in ks}


class Ridge:
    """Ridge regressions from embeddings to several targets, for many penalties from one eigen-
    decomposition of the d x d Gram matrix (cheaper than an SVD of the data when Q > d)."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray):
        x = np.asarray(train_x, dtype=np.float64)
        self.x_mean = x.mean(axis=0)
        self.y_mean = train_y.mean(axis=0)
        centred = x - self.x_mean
        self.eigenvalues, self.vectors = np.linalg.eigh(centred.T @ centred)
        self.eigenvalues = np.clip(self.eigenvalues, 0.0, None)
        self.vty = self.vectors.T @ (centred.T @ (train_y - self.y_mean))  # [d, targets]

    def coefficients(self, alpha: float) -> np.ndarray:
        """[d, targets] coefficients for penalty alpha."""
        return self.vectors @ (self.vty / (self.eigenvalues + alpha)[:, None])

    def predict(self, x: np.ndarray, alpha: float, rank: int | None = None,
                columns: slice = slice(None)) -> np.ndarray:
        """[Q, M] predictions of `columns`; with `rank`, the reduced-rank (matrix factorisation) fit."""
        beta = self.coefficients(alpha)[:, columns]
        if rank is not None and rank < beta.shape[1]:
            # the best rank-r approximation of the fitted scores keeps their top right singular
            # vectors: the eigenvectors of fitted' fitted = beta' (X'X) beta, an M x M matrix
            projected = self.vectors.T @ beta
            gram = projected.T @ (self.eigenvalues[:, None] * projected)
            _, vectors = np.linalg.eigh(gram)
            v = vectors[:, ::-1][:, :rank]  # [M, r]: the models' factors
            beta = beta @ v @ v.T
        return (x - self.x_mean) @ beta + self.y_mean[columns]


def grid(kind: str, n_models: int) -> list[dict]:
    """The hyper-parameter settings searched on `valid` for one baseline."""
    if kind == "knn":
        return [{"k": k} for k in KNN_KS]
    if kind == "forc":
        return [{"alpha": a} for a in RIDGE_ALPHAS]
    if kind == "mf":
        ranks = [r for r in MF_RANKS if r < n_models] or [1]
        return [{"rank": r, "alpha": a} for r in ranks for a in RIDGE_ALPHAS]
    raise ValueError(f"unknown baseline {kind!r}")


def complexity(kind: str, setting: dict) -> tuple:
    """A sort key of a setting's complexity, for the one-standard-error rule (smaller is simpler):
    kNN averages more neighbours, ridge and MF penalise more, MF keeps fewer factors."""
    if kind == "knn":
        return (-setting["k"],)
    if kind == "forc":
        return (-setting["alpha"],)
    if kind == "mf":
        return (setting["rank"], -setting["alpha"])
    raise ValueError(f"unknown baseline {kind!r}")


def predict_all(kind: str, train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray,
                train_length: np.ndarray, ks=None) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """(setting, [Q, M] predicted scores, [Q, M] predicted answer lengths) for every setting of the
    baseline's grid; the length comes from the same method and setting as the score. ks: kNN's k
    (default: those this train set supports; a fold's fit takes the whole train set's)."""
    m = train_y.shape[1]
    if kind == "knn":
        by_k = knn_predict(train_x, np.concatenate([train_y, train_length], axis=1), x, ks)
        return [({"k": k}, p[:, :m], p[:, m:]) for k, p in by_k.items()]
    ridge = Ridge(train_x, np.concatenate([train_y, train_length], axis=1))  # one SVD for both
    scores, lengths = slice(0, m), slice(m, None)
    return [(setting, ridge.predict(x, setting["alpha"], setting.get("rank"), scores),
             ridge.predict(x, setting["alpha"], columns=lengths)) for setting in grid(kind, m)]
