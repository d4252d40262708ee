"""TagRouter's offline neighbour blend: (1 - w) * tags + w * the k nearest fitted queries' outcomes."""
from types import SimpleNamespace

import numpy as np

from tagrouter.core import scoring
from tagrouter.core.scoring import ScoringParams
from tagrouter.offline.routers.tag_router import FittedTagRouter, query_rates


def tiny_prep():
    # 4 queries, 2 models; model 0 wins queries 0-1, model 1 wins queries 2-3; query 3 is like query 0
    embeddings = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.99, 0.141]])
    scores = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    suite = SimpleNamespace(output_tokens=np.array([[10.0, 20.0]] * 4),
                            rows=lambda split: np.array([0, 1, 2]) if split == "train" else np.array([3]))
    tags = [[("task:a", 1.0)], [("task:a", 1.0)], [("task:b", 1.0)], [("task:b", 1.0)]]
    return SimpleNamespace(suite=suite, embeddings=embeddings, outcomes=scoring.pairwise_outcomes(scores, 0.0)), tags


def test_the_blend_moves_tags_alone_toward_the_nearest_queries_outcome():
    prep, tags = tiny_prep()
    fitted = FittedTagRouter(prep, np.array([0, 1, 2]), lambda granularity: tags, scoring.score_matrix)
    base = {"topics": [], "prior_strength": 1.0}
    alone = fitted.predict(base, np.array([3]))
    near = fitted.predict({**base, "neighbours": 1, "neighbour_weight": 1.0}, np.array([3]))
    half = fitted.predict({**base, "neighbours": 1, "neighbour_weight": 0.5}, np.array([3]))
    # query 3's tag says model 1; its nearest train query (0) says model 0
    assert alone.scores[0, 1] > alone.scores[0, 0]
    np.testing.assert_allclose(near.scores[0], query_rates(prep.outcomes[[0]], ScoringParams(prior_strength=1.0))[0])
    np.testing.assert_allclose(half.scores, (alone.scores + near.scores) / 2)
    np.testing.assert_allclose(fitted.predict({**base, "neighbours": 1, "neighbour_weight": 0.0}, np.array([3])).scores,
                               alone.scores)
