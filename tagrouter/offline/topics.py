"""Suite-fitted topic tags: clusters of the training queries' embeddings at several granularities.

A query gets, at each granularity K, the tag `topic:k<K>-<i>` of its nearest centroid
(cosine), with the similarity as the tag's confidence, exactly as the tagger scores a
prototype tag. Coarse clusters are seen often, fine ones rarely: the scorer's smoothing
backs a rare fine tag off to the model's prior and the coarser tags carry the query.
Centroids are plain unit vectors, so they can be saved beside the vocabulary's prototypes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED = 0
ITERATIONS = 20


def spherical_kmeans(x: np.ndarray, k: int, seed: int = SEED, iterations: int = ITERATIONS) -> np.ndarray:
    """[k, d] unit centroids of unit rows x (k-means++ start, cosine assignment)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = max(1, min(k, n))
    centroids = [x[rng.integers(n)]]
    dist = 1.0 - x @ centroids[0]
    for _ in range(1, k):
        p = np.clip(dist, 0, None) ** 2
        i = rng.choice(n, p=p / p.sum()) if p.sum() > 0 else rng.integers(n)
        centroids.append(x[i])
        dist = np.minimum(dist, 1.0 - x @ x[i])
    c = np.stack(centroids).astype(np.float32)
    for _ in range(iterations):
        labels = (x @ c.T).argmax(axis=1)
        new = (np.eye(len(c), dtype=x.dtype)[labels].T @ x)  # sum of each cluster's members
        norms = np.linalg.norm(new, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        new = np.where(empty[:, None], c, new / np.where(norms > 0, norms, 1))
        if np.allclose(new, c):
            break
        c = new
    # Rounded like the vocabulary's prototypes, so a saved vocabulary tags exactly as evaluated.
    return np.round(c, 4).astype(np.float32)


@dataclass(frozen=True)
class TopicModel:
    """Centroids per granularity; `assign` gives each query one tag per granularity."""

    centroids: dict[int, np.ndarray]  # K -> [K, d]

    def names(self) -> list[str]:
        return [f"topic:k{k}-{i}" for k, c in self.centroids.items() for i in range(len(c))]

    def assign(self, x: np.ndarray) -> list[list[tuple[str, float]]]:
        out: list[list[tuple[str, float]]] = [[] for _ in range(len(x))]
        for k, c in self.centroids.items():
            sims = x @ c.T
            best = sims.argmax(axis=1)
            for q, i in enumerate(best):
                out[q].append((f"topic:k{k}-{i}", float(sims[q, i])))
        return out


_CACHE: dict[tuple, np.ndarray] = {}


def fit_topics(train_x: np.ndarray, granularities) -> TopicModel:
    """Centroids for each K (memoised: the same data and K give the same clusters)."""
    key = (train_x.shape, hash(train_x.tobytes()))
    out = {}
    for k in granularities:
        if (key, int(k)) not in _CACHE:
            _CACHE[(key, int(k))] = spherical_kmeans(train_x, int(k))
        out[int(k)] = _CACHE[(key, int(k))]
    return TopicModel(out)
