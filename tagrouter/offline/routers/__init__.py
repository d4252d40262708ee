"""The evaluation's routers: one interface (`base.Router`), TagRouter and the baselines, and the registry.

`tagrouter eval` evaluates `default_routers()`; an experiment passes its own list of routers
(variants constructed with other arguments) to `evaluate.evaluate`.
"""
from __future__ import annotations

from functools import partial

from tagrouter.offline.routers.base import Fitted, Prediction, Router
from tagrouter.offline.routers.embedding import EmbeddingBaseline
from tagrouter.offline.routers.tag_router import TagRouter

# name -> a factory of the router evaluated under that name, in report order
REGISTRY = {
    "tagrouter": TagRouter,
    "knn": partial(EmbeddingBaseline, "knn"),
    "mf": partial(EmbeddingBaseline, "mf"),
    "forc": partial(EmbeddingBaseline, "forc"),
}


def default_routers(names=tuple(REGISTRY)) -> list[Router]:
    """Fresh routers of the registry (by name)."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown router {unknown[0]!r}; known: {', '.join(REGISTRY)}")
    return [REGISTRY[n]() for n in names]


__all__ = ["REGISTRY", "EmbeddingBaseline", "Fitted", "Prediction", "Router", "TagRouter", "default_routers"]
