"""Fitting: a suite's outcomes on one split -> counts per (tag, model) -> Weights.

Each model is compared with every other model of the pool on each query (win, tie or
loss against each rival, one comparison per rival and query): on pools larger than
two this beat counting against the most expensive model only (ROUTING.md, section 5).
"""
from __future__ import annotations

import numpy as np

from tagrouter.core.operating import Calibration
from tagrouter.core.scoring import ALL_QUERIES_TAG, ScoringParams, pairwise_outcomes
from tagrouter.core.weights import ModelPrice, Weights
from tagrouter.offline.suite import Suite


def tag_index(query_tags: list[list[str]]) -> dict[str, int]:
    """Tag name -> column, the pseudo-tag `*` first, then tags in order of first appearance."""
    index: dict[str, int] = {ALL_QUERIES_TAG: 0}
    for tags in query_tags:
        for tag in tags:
            index.setdefault(tag, len(index))
    return index


def incidence(query_tags: list[list[str]], index: dict[str, int]) -> np.ndarray:
    """[Q, T] 1 where query q carries tag t (every query carries `*`); tags outside index are ignored."""
    out = np.zeros((len(query_tags), len(index)))
    out[:, index[ALL_QUERIES_TAG]] = 1.0
    for q, tags in enumerate(query_tags):
        cols = [index[t] for t in tags if t in index]
        out[q, cols] = 1.0
    return out


def count_matrix(carries: np.ndarray, outcomes: np.ndarray, output_tokens: np.ndarray,
                 answered: np.ndarray | None = None) -> np.ndarray:
    """[T, M, 5] counts (win, tie, loss, answers, output_tokens) summed over the queries carrying each tag.

    carries: [Q, T] 0/1; outcomes: [Q, M, 3]; output_tokens: [Q, M]; answered: [Q, M] 0/1, which
    answers to count (all by default; only the new model's when a model joins).
    """
    answered = np.ones(outcomes.shape[:2]) if answered is None else answered
    per_query = np.concatenate([outcomes, answered[..., None], (output_tokens * answered)[..., None]], axis=2)
    q, m, f = per_query.shape
    return (carries.T @ per_query.reshape(q, m * f)).reshape(-1, m, f)


def count_outcomes(query_tags: list[list[str]], outcomes: np.ndarray, output_tokens: np.ndarray,
                   models: list[str]) -> dict[str, dict[str, list[float]]]:
    """counts[tag][model] = [win, tie, loss, answers, output_tokens] summed over the queries carrying tag.

    query_tags: tags of each query (the pseudo-tag `*` is added to all); outcomes: [Q, M, 3];
    output_tokens: [Q, M].
    """
    index = tag_index(query_tags)
    totals = count_matrix(incidence(query_tags, index), outcomes, output_tokens)
    return {tag: {m: totals[i, j].tolist() for j, m in enumerate(models)} for tag, i in index.items()}


def outcomes_with(scores: np.ndarray, tie_margin: float, new: int) -> np.ndarray:
    """[Q, M, 3] only the comparisons that involve model `new`: what the pool gains when it joins.

    Added to the counts of the pool without it, they give the counts of the pool with it.
    """
    full = pairwise_outcomes(scores, tie_margin)
    others = [m for m in range(scores.shape[1]) if m != new]
    without = np.zeros_like(full)
    without[:, others] = pairwise_outcomes(scores[:, others], tie_margin) if len(others) > 1 else 0.0
    return full - without


def fit_added_model(suite: Suite, query_tags: list[list[str]], pool: list[str], model: str,
                    split: str = "train") -> dict[str, dict[str, list[float]]]:
    """Counts that `model` adds to weights fitted on `pool`, from the suite's rows of all of them."""
    names = suite.model_names
    missing = [m for m in [*pool, model] if m not in names]
    if missing:
        raise ValueError(f"{suite.path}: the suite has no rows for model {missing[0]!r}")
    if model in pool:
        raise ValueError(f"model {model!r} is already in the pool")
    columns = [names.index(m) for m in [*pool, model]]
    rows = suite.rows(split)
    scores = suite.scores[np.ix_(rows, columns)]
    outcomes = outcomes_with(scores, suite.tie_margin, len(columns) - 1)
    answered = np.zeros(scores.shape)
    answered[:, -1] = 1.0
    tags = [query_tags[r] for r in rows]
    index = tag_index(tags)
    totals = count_matrix(incidence(tags, index), outcomes, suite.output_tokens[np.ix_(rows, columns)], answered)
    order = [*pool, model]
    return {tag: {m: totals[i, j].tolist() for j, m in enumerate(order)} for tag, i in index.items()}


def merge_counts(base: dict[str, dict[str, list[float]]],
                 extra: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """Sum of two count tables (tag -> model -> fields): how a model's outcomes join the pool."""
    out = {tag: {m: list(row) for m, row in per.items()} for tag, per in base.items()}
    for tag, per in extra.items():
        target = out.setdefault(tag, {})
        for model, row in per.items():
            old = target.get(model)
            target[model] = [a + b for a, b in zip(old, row)] if old else list(row)
    return out


def fit_counts(suite: Suite, query_tags: list[list[str]], split: str = "train") -> dict[str, dict[str, list[float]]]:
    """Counts from the rows of `split`; query_tags holds the tags of every query of the suite."""
    rows = suite.rows(split)
    outcomes = pairwise_outcomes(suite.scores[rows], suite.tie_margin)
    return count_outcomes([query_tags[r] for r in rows], outcomes, suite.output_tokens[rows], suite.model_names)


def weights_from_counts(suite: Suite, counts, params: ScoringParams, provenance: str,
                        calibration: Calibration | None = None) -> Weights:
    models = [ModelPrice(m.name, m.input_usd_per_mtok, m.output_usd_per_mtok) for m in suite.models]
    return Weights(models=models, params=params, counts=counts, provenance=provenance, calibration=calibration)
