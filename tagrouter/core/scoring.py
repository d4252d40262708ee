"""The count-to-score rule as pure functions over arrays: no I/O.

The scorer service, `tagrouter fit` and the evaluation all call these, so the figures in
the docs are what the service computes.

For tag t and model m with outcome counts (win, tie, loss) the smoothed rate is

    rate(t, m) = (win * r_win + tie * r_tie + loss * r_loss + k * prior(m)) / (win + tie + loss + k)

where prior(m) is the model's rate over all queries (the pseudo-tag `*`) and k the prior
strength: a tag seen twice barely moves a model away from its overall rate, a tag seen a
hundred times speaks for itself. A query's score is the weighted mean of its tags' rates,

    S(m, q) = sum_t a_t * rate(t, m) / sum_t a_t

with a_t the tagger's confidence in tag t times its level's weight (the level is the tag name's
prefix before ':'; `ScoringParams.level_weight_*`, 1 for task tags and unknown prefixes).
With no known tag, S(m, q) = prior(m).
The paper sums raw counts times rewards; the mean of smoothed rates keeps S on one scale
for every query, which the cost knob needs (see services/router/decision.py).

No non-finite number comes out of finite counts: the counts are clipped to the bounds of
tagrouter/core/limits.py first (what LoadWeights and Feedback let into state; a non-finite
cell counts as unseen), every ratio is a share in [0, 1] times a bounded count, and mean
answer lengths are clipped to MAX_OUTPUT_TOKENS. With the parameters `weights.validate`
accepts (|each| <= MAX_PARAM), every score and length is finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tagrouter.core.limits import MAX_COUNT, MAX_OUTPUT_TOKENS, MAX_TOTAL_OUTPUT_TOKENS

ALL_QUERIES_TAG = "*"  # pseudo-tag carried by every query: the per-model prior
OUTCOMES = ("win", "tie", "loss")
# Columns of a counts array: the three outcomes, then answers seen and their output tokens.
WIN, TIE, LOSS, ANSWERS, OUTPUT_TOKENS = range(5)
COUNT_FIELDS = ("win", "tie", "loss", "answers", "output_tokens")


@dataclass(frozen=True)
class ScoringParams:
    win_reward: float = 1.0
    tie_reward: float = 0.15
    loss_reward: float = 0.0
    prior_strength: float = 5.0
    # Tag weight w_t = confidence * n_t / (n_t + tag_evidence), n_t the queries that carried the
    # tag in the counts: a rare tag speaks more softly. 0 = the tagger's confidence alone.
    tag_evidence: float = 0.0
    # The decision rule's cost scale (services/router/decision.py): 0 = relative to the query's
    # priciest candidate; > 0 = USD, one scale for every query.
    cost_scale_usd: float = 0.0
    # Multiplier of a tag's weight by its level, the name's prefix before ':' (task tags and
    # other prefixes: 1). 0 drops the level; chosen on the selection rows like the other knobs.
    level_weight_domain: float = 1.0
    level_weight_topic: float = 1.0
    level_weight_attr: float = 1.0
    # Pseudo-count pulling a tag's mean answer length toward the model's overall mean, for the cost
    # estimate: 0 = prior_strength (as the rates); MAX_PARAM = each model's overall mean. Chosen on
    # the selection rows by the error of the estimated cost (tagrouter/offline/cost_estimates.py).
    length_prior_strength: float = 0.0

    def length_strength(self) -> float:
        return self.length_prior_strength if self.length_prior_strength > 0 else self.prior_strength

    def level_weight(self, tag: str) -> float:
        level = tag.partition(":")[0]
        if level == "domain":
            return self.level_weight_domain
        if level == "topic":
            return self.level_weight_topic
        if level == "attr":
            return self.level_weight_attr
        return 1.0

    def rewards(self) -> np.ndarray:
        return np.array([self.win_reward, self.tie_reward, self.loss_reward], dtype=np.float64)


def bounded_counts(counts: np.ndarray) -> np.ndarray:
    """`counts` [..., 5] with non-finite or negative cells as 0 and each column clipped to its
    bound in tagrouter/core/limits.py: the only counts the rule computes with."""
    counts = np.asarray(counts, dtype=np.float64)
    finite = np.isfinite(counts)
    if finite.all() and counts.size and counts.min() >= 0 and counts[..., :OUTPUT_TOKENS].max() <= MAX_COUNT \
            and counts[..., OUTPUT_TOKENS].max() <= MAX_TOTAL_OUTPUT_TOKENS:
        return counts
    out = np.where(finite, np.maximum(counts, 0.0), 0.0)
    out[..., :OUTPUT_TOKENS] = np.minimum(out[..., :OUTPUT_TOKENS], MAX_COUNT)
    out[..., OUTPUT_TOKENS] = np.minimum(out[..., OUTPUT_TOKENS], MAX_TOTAL_OUTPUT_TOKENS)
    return out


def _reward_and_answers(counts: np.ndarray, params: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    """Reward summed over a cell's comparisons, rescaled to answers (queries), and the answers.

    win/tie/loss count comparisons (one per rival and query, or one per judged feedback);
    `answers` counts queries. Rescaling keeps the prior strength in queries whatever the
    pool size, and keeps counts additive when a model joins the pool. Computed as the mean
    reward per comparison (shares in [0, 1]) times the answers, so it cannot overflow.
    """
    outcomes = counts[..., :3]
    comparisons = outcomes.sum(axis=-1)
    seen = comparisons > 0
    answers = np.where(counts[..., ANSWERS] > 0, counts[..., ANSWERS], comparisons)
    shares = np.divide(outcomes, comparisons[..., None], out=np.zeros_like(outcomes), where=seen[..., None])
    return (shares @ params.rewards()) * answers * seen, np.where(seen, answers, 0.0)


def prior_rates(all_counts: np.ndarray, params: ScoringParams) -> np.ndarray:
    """[M] each model's rate over all queries, from the `*` counts [M, 5]; 0 where unseen."""
    reward, n = _reward_and_answers(bounded_counts(all_counts), params)
    return np.divide(reward, n, out=np.zeros_like(reward), where=n > 0)


def tag_rates(counts: np.ndarray, prior: np.ndarray, params: ScoringParams) -> np.ndarray:
    """[T, M] smoothed rate of each model on each tag, from counts [T, M, 5] and prior [M]."""
    reward, n = _reward_and_answers(bounded_counts(counts), params)
    k = params.prior_strength
    return (reward + k * prior) / np.maximum(n + k, 1e-12)


def level_factors(names, params: ScoringParams) -> np.ndarray:
    """[T] each tag's level weight (`ScoringParams.level_weight`), by name."""
    return np.array([params.level_weight(n) for n in names], dtype=np.float64)


def tag_weights(confidence: np.ndarray, counts: np.ndarray, params: ScoringParams, names) -> np.ndarray:
    """[..., T] the weight of each of a query's tags in its score: the tagger's confidence times its
    level's weight, 0 for a tag the counts have never seen, times n_t / (n_t + tag_evidence) when
    tag_evidence > 0.

    confidence: [..., T] (one query or [Q, T]); counts: [T, M, 5] and names [T] of the same tags.
    """
    counts = bounded_counts(counts)
    seen = counts[..., ANSWERS].max(axis=-1) if counts.shape[0] else np.zeros(0)  # [T] queries with the tag
    factor = (seen > 0).astype(np.float64)
    if params.tag_evidence > 0:
        factor = factor * seen / (seen + params.tag_evidence)
    return confidence * (factor * level_factors(names, params))


def score_matrix(rates: np.ndarray, tag_weights: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """[Q, M] S(m, q) for many queries at once: the rule of `combine`, vectorised.

    rates: [T, M]; tag_weights: [Q, T] >= 0 (0 where a query lacks a tag); prior: [M].
    """
    total = tag_weights.sum(axis=1, keepdims=True)
    mixed = tag_weights @ rates
    return np.where(total > 0, mixed / np.where(total > 0, total, 1.0), prior[None, :])


@dataclass(frozen=True)
class QueryScore:
    """One query scored against the pool: what Score answers and the router decides on."""

    scores: np.ndarray  # [M] S(m, q)
    contributions: np.ndarray  # [T, M] each tag's part of each score (sums to scores; [0, M] if no tag counts)
    tag_weights: np.ndarray  # [T] each tag's weight in the mean (0 for a tag the counts never saw)
    expected_output_tokens: np.ndarray  # [M]
    prior: np.ndarray  # [M] each model's overall rate (the `*` tag): its score with no known tag


@dataclass(frozen=True)
class TagStatistics:
    """What the rule needs of each of a query's tags, whatever the query (both the scorer and the
    router's copy compute it per query, for the query's tags: `score_query`)."""

    rates: np.ndarray  # [T, M] smoothed rates (`tag_rates`)
    weight_factors: np.ndarray  # [T] a tag's weight per unit of confidence (`tag_weights` with confidence 1)
    output_tokens: np.ndarray  # [T, M] smoothed mean answer length
    prior: np.ndarray  # [M]
    overall_output_tokens: np.ndarray  # [M]


def answer_lengths(counts: np.ndarray, all_counts: np.ndarray, params: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    """([M] each model's mean answer length over all queries, [T, M] its mean on each tag, smoothed
    toward the former with `length_strength()`); each in [0, MAX_OUTPUT_TOKENS]."""
    counts, all_counts = bounded_counts(counts), bounded_counts(all_counts)
    overall = np.divide(all_counts[:, OUTPUT_TOKENS], all_counts[:, ANSWERS],
                        out=np.zeros(all_counts.shape[0]), where=all_counts[:, ANSWERS] > 0)
    overall = np.minimum(overall, MAX_OUTPUT_TOKENS)
    k = params.length_strength()
    per_tag = (counts[..., OUTPUT_TOKENS] + k * overall) / np.maximum(counts[..., ANSWERS] + k, 1e-12)
    return overall, np.clip(per_tag, 0.0, MAX_OUTPUT_TOKENS)


def tag_statistics(counts: np.ndarray, all_counts: np.ndarray, names, params: ScoringParams) -> TagStatistics:
    """From counts [T, M, 5] of tags `names` [T] and the `*` counts [M, 5]."""
    counts, all_counts = bounded_counts(counts), bounded_counts(all_counts)
    prior = prior_rates(all_counts, params)
    overall, lengths = answer_lengths(counts, all_counts, params)
    return TagStatistics(tag_rates(counts, prior, params), tag_weights(np.ones(counts.shape[0]), counts, params, names),
                         lengths, prior, overall)


def combine(stats: TagStatistics, rows, confidence: np.ndarray) -> QueryScore:
    """S(m, q) and the expected lengths of a query carrying tags `rows` of `stats` with the
    tagger's `confidence` [T]: the weighted means of their rates and of their smoothed answer lengths,
    each tag's contribution to the scores kept for the explanation."""
    weights = confidence * stats.weight_factors[rows]
    total = float(weights.sum()) if weights.size else 0.0
    if total <= 0:
        return QueryScore(stats.prior.copy(), np.zeros((0, stats.prior.shape[0])), weights,
                          stats.overall_output_tokens.copy(), stats.prior)
    share = (weights / total)[:, None]
    contributions = stats.rates[rows] * share
    # a mean of lengths each within the limit can pass it by a rounding error
    lengths = np.minimum((stats.output_tokens[rows] * share).sum(axis=0), MAX_OUTPUT_TOKENS)
    return QueryScore(contributions.sum(axis=0), contributions, weights, lengths, stats.prior)


def score_query(counts: np.ndarray, all_counts: np.ndarray, confidence: np.ndarray, names,
                params: ScoringParams) -> QueryScore:
    """The whole count-to-score rule for one query: its tags' counts [T, M, 5] (zeros for a tag
    the weights lack), the `*` counts [M, 5], the tagger's confidences [T] and the tag names [T]."""
    return combine(tag_statistics(counts, all_counts, names, params), slice(None), confidence)


def expected_output_matrix(counts: np.ndarray, all_counts: np.ndarray, tag_weights: np.ndarray,
                           params: ScoringParams) -> np.ndarray:
    """[Q, M] expected answer length of many queries at once (tag_weights [Q, T]): the weighted mean
    of their tags' smoothed lengths (`answer_lengths`), as `combine` gives for one query."""
    overall, per_tag = answer_lengths(counts, all_counts, params)
    return np.minimum(score_matrix(per_tag, tag_weights, overall), MAX_OUTPUT_TOKENS)


def pairwise_outcomes(scores: np.ndarray, tie_margin: float) -> np.ndarray:
    """[Q, M, 3] win/tie/loss of each model against every other model of the pool, per query.

    scores: [Q, M]. Each query gives each model M-1 comparisons, one per rival: counts are sums
    over pairs, so fitting a pool and adding a model's comparisons later give the same counts
    as fitting all at once. The rates rescale them to queries (see `_reward_and_answers`).
    """
    q, m = scores.shape
    if m < 2:
        raise ValueError("a pool needs at least two models")
    diff = scores[:, :, None] - scores[:, None, :]  # [Q, M, M'] score(m) - score(m')
    off_diagonal = ~np.eye(m, dtype=bool)[None]
    win = ((diff > tie_margin) & off_diagonal).sum(axis=2)
    tie = ((np.abs(diff) <= tie_margin) & off_diagonal).sum(axis=2)
    loss = ((diff < -tie_margin) & off_diagonal).sum(axis=2)
    return np.stack([win, tie, loss], axis=2).astype(np.float64)
