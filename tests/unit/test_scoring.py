"""The pure maths: outcomes, smoothed rates, query scores, the decision rule."""
import numpy as np
import pytest

from tagrouter.core import scoring
from tagrouter.core.decision import anchor, choose, estimate_costs, utilities
from tagrouter.core.scoring import ScoringParams


def test_pairwise_outcomes_count_one_comparison_per_rival():
    scores = np.array([[1.0, 0.0, 0.0]])
    out = scoring.pairwise_outcomes(scores, tie_margin=0.0)
    assert out[0, 0].tolist() == [2.0, 0.0, 0.0]  # beats both rivals
    assert out[0, 1].tolist() == [0.0, 1.0, 1.0]  # ties one, loses to one
    assert np.allclose(out.sum(axis=2), 2.0)


def test_rates_count_queries_not_comparisons():
    """A query against 6 rivals weighs as much as one against 1 rival: the prior strength is in queries."""
    params = ScoringParams(tie_reward=0.0, prior_strength=2.0)
    prior = np.array([0.0])
    one_rival = np.array([[[1, 0, 0, 1, 0]]], dtype=float)
    six_rivals = np.array([[[6, 0, 0, 1, 0]]], dtype=float)
    assert scoring.tag_rates(one_rival, prior, params) == pytest.approx(scoring.tag_rates(six_rivals, prior, params))


def test_tie_margin_turns_close_scores_into_ties():
    out = scoring.pairwise_outcomes(np.array([[0.55, 0.5]]), tie_margin=0.1)
    assert out[0].tolist() == [[0, 1, 0], [0, 1, 0]]


def test_rare_tags_back_off_to_the_prior():
    params = ScoringParams(prior_strength=5.0)
    prior = np.array([0.5, 0.5])
    rare = np.array([[[1, 0, 0, 1, 0], [0, 0, 1, 1, 0]]], dtype=float)  # seen once
    common = rare * 100
    r_rare = scoring.tag_rates(rare, prior, params)[0]
    r_common = scoring.tag_rates(common, prior, params)[0]
    assert abs(r_rare[0] - r_rare[1]) < 0.2 < abs(r_common[0] - r_common[1])


def _stats(rates: np.ndarray, prior: np.ndarray) -> scoring.TagStatistics:
    return scoring.TagStatistics(rates, np.ones(len(rates)), np.zeros_like(rates), prior, np.zeros_like(prior))


def test_query_score_is_the_weighted_mean_of_tag_rates_and_contributions_sum_to_it():
    rates = np.array([[1.0, 0.0], [0.0, 1.0]])
    scored = scoring.combine(_stats(rates, np.zeros(2)), slice(None), np.array([3.0, 1.0]))
    assert scored.scores.tolist() == [0.75, 0.25]
    assert np.allclose(scored.contributions.sum(axis=0), scored.scores)
    assert scoring.score_matrix(rates, np.array([[3.0, 1.0]]), np.zeros(2))[0].tolist() == [0.75, 0.25]


def test_no_tags_scores_the_prior():
    prior = np.array([0.3, 0.7])
    scored = scoring.combine(_stats(np.zeros((0, 2)), prior), slice(None), np.zeros(0))
    assert scored.scores.tolist() == prior.tolist()
    assert scoring.score_matrix(np.zeros((0, 2)), np.zeros((1, 0)), prior)[0].tolist() == prior.tolist()


def test_choose_trades_score_against_relative_cost():
    scores, costs = np.array([0.9, 0.8]), np.array([10.0, 1.0])
    assert choose(scores, costs, 0.0) == 0
    assert choose(scores, costs, 0.05) == 0  # 0.9 - 0.05 > 0.8 - 0.005
    assert choose(scores, costs, 0.5) == 1


def test_choose_breaks_ties_toward_the_cheaper_model():
    assert choose(np.array([0.5, 0.5]), np.array([2.0, 1.0]), 0.0) == 1


def test_choose_is_vectorised_over_queries():
    scores = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert choose(scores, np.ones((2, 2)), 0.0).tolist() == [0, 1]


def test_anchor_is_the_highest_overall_rate_ties_to_the_priciest():
    assert anchor(np.array([0.2, 0.7, 0.5]), np.array([30.0, 1.0, 10.0])) == 1
    assert anchor(np.array([0.7, 0.2, 0.7]), np.array([1.0, 30.0, 10.0])) == 2


def test_large_quality_margin_always_chooses_the_anchor():
    rng = np.random.default_rng(0)
    scores, costs = rng.random((50, 4)), rng.random((50, 4)) + 0.1
    for lam in (0.0, 0.3):
        assert (choose(scores, costs, lam, 0.0, 1e6, 2) == 2).all()
        assert (choose(scores, costs, lam, 0.5, 1e6, 2) == 2).all()


def test_zero_quality_margin_is_the_rule_without_it():
    rng = np.random.default_rng(1)
    scores, costs = rng.random((50, 4)), rng.random((50, 4)) + 0.1
    for lam, scale in ((0.0, 0.0), (0.2, 0.0), (0.2, 0.7)):
        assert (choose(scores, costs, lam, scale, 0.0, 1) == choose(scores, costs, lam, scale)).all()
        assert np.array_equal(utilities(scores, costs, lam, scale, 0.0, 1), utilities(scores, costs, lam, scale))


def test_quality_margin_is_the_papers_threshold_for_two_models():
    # weak (0) scores 0.62, strong (1) 0.6: the weak one only when S(weak) - S(strong) > theta
    scores, costs = np.array([0.62, 0.6]), np.array([1.0, 10.0])
    assert choose(scores, costs, 0.0, 0.0, 0.01, 1) == 0
    assert choose(scores, costs, 0.0, 0.0, 0.03, 1) == 1
    # vectorised over settings, as the evaluation sweeps it
    margins = np.array([0.0, 0.01, 0.03])[:, None, None]
    assert choose(scores[None], costs[None], 0.0, 0.0, margins, 1)[:, 0].tolist() == [0, 0, 1]


def test_cost_estimate_uses_per_million_token_prices():
    cost = estimate_costs(1000, np.array([500.0]), np.array([10.0]), np.array([30.0]))
    assert cost[0] == pytest.approx(0.01 + 0.015)


def test_level_weights_scale_a_tag_by_its_name_prefix():
    names = ["task:a", "domain:b", "topic:k4-0", "attr:c", "other"]
    counts = np.zeros((5, 2, 5))
    counts[..., scoring.ANSWERS] = 10.0
    params = ScoringParams(level_weight_domain=0.5, level_weight_topic=0.0, level_weight_attr=2.0)
    got = scoring.tag_weights(np.ones(5), counts, params, names)
    assert got.tolist() == [1.0, 0.5, 0.0, 2.0, 1.0]
    assert scoring.tag_weights(np.ones(5), counts, ScoringParams(), names).tolist() == [1.0] * 5


def test_level_weights_round_trip_and_default_to_one_when_unset():
    from tagrouter.core.weights import Weights, WeightsError, validate

    counts = {"*": {"a": [1.0, 0.0, 0.0, 1.0, 5.0]}}
    from tagrouter.core.weights import ModelPrice
    w = Weights([ModelPrice("a", 1.0, 1.0)], ScoringParams(level_weight_topic=0.0, level_weight_attr=0.25), counts)
    back = Weights.from_proto(w.to_proto())
    assert back.params == w.params
    msg = w.to_proto()
    msg.params.ClearField("level_weight_topic")
    msg.params.ClearField("level_weight_attr")
    assert Weights.from_proto(msg).params.level_weight_topic == 1.0
    bad = Weights([ModelPrice("a", 1.0, 1.0)], ScoringParams(level_weight_domain=-1.0), counts)
    with pytest.raises(WeightsError):
        validate(bad, "test")


def test_one_query_path_equals_the_evaluation_path_and_the_routers_table():
    """Score (score_query), the router's precomputed table (combine) and the evaluation
    (score_matrix, expected_output_matrix) give the same numbers."""
    from services.router.mirror import ScoringTable
    from tagrouter.core.weights import ModelPrice, Weights

    rng = np.random.default_rng(7)
    levels = ["task:a", "domain:b", "topic:c", "attr:d", "task:e", "topic:f"]
    for trial in range(50):
        m = int(rng.integers(2, 6))
        counts = rng.integers(0, 30, (len(levels), m, 5)).astype(float)
        counts[rng.random((len(levels), m)) < 0.3] = 0
        counts[int(rng.integers(len(levels)))] = 0  # a tag nobody has seen
        all_counts = rng.integers(1, 300, (m, 5)).astype(float)
        params = ScoringParams(tie_reward=0.5, loss_reward=-1.0, prior_strength=float(rng.choice([1, 10, 100])),
                               tag_evidence=float(rng.choice([0, 30])), level_weight_topic=0.5, level_weight_attr=0.0)
        chosen = sorted(rng.choice(len(levels), size=int(rng.integers(0, 5)), replace=False).tolist())
        names = [levels[i] for i in chosen]
        confidence = rng.random(len(chosen))

        one = scoring.score_query(counts[chosen], all_counts, confidence, names, params)

        dense = np.zeros(len(levels))
        dense[chosen] = confidence
        weights = scoring.tag_weights(dense[None, :], counts, params, levels)
        prior = scoring.prior_rates(all_counts, params)
        matrix = scoring.score_matrix(scoring.tag_rates(counts, prior, params), weights, prior)[0]
        lengths = scoring.expected_output_matrix(counts, all_counts, weights, params)[0]
        assert np.allclose(one.scores, matrix) and np.allclose(one.expected_output_tokens, lengths), trial
        if one.contributions.size:
            assert np.allclose(one.contributions.sum(axis=0), one.scores)

        models = [ModelPrice(f"m{i}", 1.0, 2.0) for i in range(m)]
        table = ScoringTable.from_weights(Weights(models=models, params=params, counts={
            **{t: {f"m{i}": counts[j, i].tolist() for i in range(m)} for j, t in enumerate(levels)},
            "*": {f"m{i}": all_counts[i].tolist() for i in range(m)}}))
        copied = table.score([*names, "task:never-counted"], np.append(confidence, 0.9))
        assert np.allclose(copied.scores, one.scores) and np.allclose(copied.expected_output_tokens,
                                                                      one.expected_output_tokens), trial
