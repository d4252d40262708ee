"""The model pool scored for one query: what Score answers and what the router decides on.

One assembly for both paths: the scorer computes it from counts read from Redis for the
query's tags, the router from its copy of the whole weights (`ScoringTable`); both then
keep the candidates and the tags that weigh, the same way.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tagrouter.core import scoring
from tagrouter.core.limits import check_known_models
from tagrouter.core.operating import Calibration
from tagrouter.core.scoring import ALL_QUERIES_TAG, ScoringParams
from tagrouter.core.weights import ModelPrice, Weights, counts_matrix
from tagrouter.scorer.v1 import scorer_pb2


def distinct_tags(pairs: Iterable[tuple[str, float]]) -> tuple[list[str], np.ndarray]:
    """A query's (tag, confidence) pairs without `*` and repeats (the first confidence stays)."""
    confidence: dict[str, float] = {}
    for name, weight in pairs:
        if name != ALL_QUERIES_TAG and name not in confidence:
            confidence[name] = weight
    return list(confidence), np.array(list(confidence.values()), dtype=np.float64)


@dataclass(frozen=True)
class CandidateScores:
    """The candidates' scores, prices and expected lengths for one query, with each tag's part."""

    models: list[str]
    scores: np.ndarray  # [M]
    expected_output_tokens: np.ndarray  # [M]
    input_usd_per_mtok: np.ndarray  # [M]
    output_usd_per_mtok: np.ndarray  # [M]
    tags: list[str]  # the tags that weigh in the scores
    contributions: np.ndarray  # [len(tags), M]
    prior: np.ndarray  # [M] each model's overall rate (the `*` tag): the quality margin's anchor
    weights_version: str
    cost_scale_usd: float
    calibration: Calibration | None = None  # the weights' knob calibration, for the router

    @classmethod
    def select(cls, scored: scoring.QueryScore, tags: list[str], models: list[ModelPrice], candidates: list[str],
               weights_version: str, params: ScoringParams, calibration: Calibration | None = None
               ) -> CandidateScores:
        """Keep `candidates` (all models when empty; each must be in the pool) and the tags that weigh."""
        names = [m.name for m in models]
        check_known_models(candidates, names)
        keep = [names.index(m) for m in candidates] if candidates else list(range(len(names)))
        used = [t for t in range(len(tags)) if scored.tag_weights[t] > 0]
        return cls([names[m] for m in keep], scored.scores[keep], scored.expected_output_tokens[keep],
                   np.array([models[m].input_usd_per_mtok for m in keep]),
                   np.array([models[m].output_usd_per_mtok for m in keep]),
                   [tags[t] for t in used],
                   scored.contributions[np.ix_(used, keep)] if used else np.zeros((0, len(keep))),
                   scored.prior[keep], weights_version, params.cost_scale_usd, calibration)

    def to_proto(self, unknown_tags: list[str] = ()) -> scorer_pb2.ScoreResponse:
        return scorer_pb2.ScoreResponse(
            weights_version=self.weights_version, cost_scale_usd=self.cost_scale_usd, unknown_tags=unknown_tags,
            calibration=self.calibration.to_proto() if self.calibration is not None else None,
            scores=[scorer_pb2.ModelScore(
                model=m, score=float(self.scores[j]), expected_output_tokens=float(self.expected_output_tokens[j]),
                input_usd_per_mtok=float(self.input_usd_per_mtok[j]),
                output_usd_per_mtok=float(self.output_usd_per_mtok[j]), prior_score=float(self.prior[j]),
                contributions=[scorer_pb2.TagContribution(tag=t, contribution=float(self.contributions[i, j]))
                               for i, t in enumerate(self.tags)],
            ) for j, m in enumerate(self.models)])

    @classmethod
    def from_proto(cls, response: scorer_pb2.ScoreResponse) -> CandidateScores:
        models = list(response.scores)
        tags = list(dict.fromkeys(c.tag for m in models for c in m.contributions))
        contributions = np.zeros((len(tags), len(models)))
        row = {t: i for i, t in enumerate(tags)}
        for j, m in enumerate(models):
            for c in m.contributions:
                contributions[row[c.tag], j] = c.contribution
        return cls([m.model for m in models], np.array([m.score for m in models]),
                   np.array([m.expected_output_tokens for m in models]),
                   np.array([m.input_usd_per_mtok for m in models]), np.array([m.output_usd_per_mtok for m in models]),
                   tags, contributions, np.array([m.prior_score for m in models]),
                   response.weights_version, response.cost_scale_usd,
                   Calibration.from_proto(response.calibration) if response.HasField("calibration") else None)


@dataclass(frozen=True)
class ScoringTable:
    """The weights as arrays, for scoring without I/O, with the scorer's Score rule. Every tag's
    statistics are computed once per table (`statistics`): every Feedback moves the `*` row, hence
    every tag's rate, so the router's copy (`CountsCopy`) makes a new table after each change."""

    version: str
    models: list[ModelPrice]
    params: ScoringParams
    rows: dict[str, int]  # tag -> row of `counts`
    counts: np.ndarray = field(repr=False)  # [T, M, 5]
    all_counts: np.ndarray = field(repr=False)  # [M, 5], the `*` row
    calibration: Calibration | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @classmethod
    def from_weights(cls, weights: Weights) -> ScoringTable:
        tags = [t for t in weights.counts if t != ALL_QUERIES_TAG]
        counts = counts_matrix([weights.counts[t] for t in tags], weights.model_names)
        all_counts = counts_matrix([weights.counts.get(ALL_QUERIES_TAG, {})], weights.model_names)[0]
        return cls(weights.version, list(weights.models), weights.params, {t: i for i, t in enumerate(tags)},
                   counts, all_counts, weights.calibration)

    @cached_property
    def statistics(self) -> scoring.TagStatistics:
        """Every tag's statistics, and last a row of zero counts for the tags the weights lack: computed
        once per table (the router's copy makes a table per change and computes them as it arrives,
        `prepared`); the elementwise rule gives each row what `score_query` gives it alone."""
        names = [*self.rows, ""]
        counts = np.concatenate([self.counts, np.zeros((1, *self.counts.shape[1:]))])
        return scoring.tag_statistics(counts, self.all_counts, names, self.params)

    def prepared(self) -> ScoringTable:
        """This table with its statistics computed now, so that no query pays for them."""
        _ = self.statistics
        return self

    def score(self, tags: list[str], confidence: np.ndarray) -> scoring.QueryScore:
        """The query's scores; `tags` without `*`, deduplicated, `confidence` [len(tags)] (a tag the
        weights lack has zero counts, so no weight)."""
        unseen = len(self.rows)
        return scoring.combine(self.statistics, [self.rows.get(t, unseen) for t in tags], confidence)

    def candidates(self, pairs: Iterable[tuple[str, float]], candidates: list[str]) -> CandidateScores:
        """What the scorer's Score would answer for these (tag, confidence) pairs, computed from the copy."""
        tags, confidence = distinct_tags(pairs)
        return CandidateScores.select(self.score(tags, confidence), tags, self.models, candidates, self.version,
                                      self.params, self.calibration)
