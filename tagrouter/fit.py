"""Fitting: a suite's outcomes on one split -> counts per (tag, model) -> Weights.

Each model is compared with every other model of the pool on each query (win, tie or
loss against each rival, one unit per query split over the rivals): on pools larger than
two this beat counting against the most expensive model only (ROUTING.md, section 5).
"""
from __future__ import annotations

import numpy as np

from services.scorer.scoring import ALL_QUERIES_TAG, COUNT_FIELDS, ScoringParams, pairwise_outcomes
from services.scorer.weights import ModelPrice, Weights
from tagrouter.suite import Suite


def count_outcomes(query_tags: list[list[str]], outcomes: np.ndarray, output_tokens: np.ndarray,
                   models: list[str]) -> dict[str, dict[str, list[float]]]:
    """counts[tag][model] = [win, tie, loss, answers, output_tokens] summed over the queries carrying tag.

    query_tags: tags of each query (the pseudo-tag `*` is added to all); outcomes: [Q, M, 3];
    output_tokens: [Q, M].
    """
    index: dict[str, int] = {}
    for tags in query_tags:
        for tag in (ALL_QUERIES_TAG, *tags):
            index.setdefault(tag, len(index))
    totals = np.zeros((len(index), len(models), len(COUNT_FIELDS)))
    per_query = np.concatenate([outcomes, np.ones(outcomes.shape[:2] + (1,)), output_tokens[..., None]], axis=2)
    for q, tags in enumerate(query_tags):
        rows = [index[t] for t in dict.fromkeys((ALL_QUERIES_TAG, *tags))]
        totals[rows] += per_query[q]
    return {tag: {m: totals[i, j].tolist() for j, m in enumerate(models)} for tag, i in index.items()}


def fit_counts(suite: Suite, query_tags: list[list[str]], split: str = "train") -> dict[str, dict[str, list[float]]]:
    """Counts from the rows of `split`; query_tags holds the tags of every query of the suite."""
    rows = suite.rows(split)
    outcomes = pairwise_outcomes(suite.scores[rows], suite.tie_margin)
    return count_outcomes([query_tags[r] for r in rows], outcomes, suite.output_tokens[rows], suite.model_names)


def weights_from_counts(suite: Suite, counts, params: ScoringParams, provenance: str) -> Weights:
    models = [ModelPrice(m.name, m.input_usd_per_mtok, m.output_usd_per_mtok) for m in suite.models]
    return Weights(models=models, params=params, counts=counts, provenance=provenance)
