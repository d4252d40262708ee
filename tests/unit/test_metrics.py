"""Routing-quality metrics (shared/docs/ROUTING.md, section 3) on hand-checked cases."""
import numpy as np
import pytest

from tagrouter.offline import quality_metrics as metrics


def test_accept_is_within_tie_margin_of_the_best_other_model():
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.45, 0.2]])
    acc = metrics.accepted(scores, tie_margin=0.1)
    assert acc.tolist() == [[True, False, False], [True, True, True], [True, True, False]]


def test_random_mixing_of_two_models_is_the_trapezoid_between_them():
    singles = metrics.SingleModels(["weak", "strong"], np.array([0.2, 0.8]), np.zeros(2), np.array([1.0, 3.0]))
    hull = metrics.concave_hull(np.array([[1.0, 0.2], [3.0, 0.8]]))
    assert metrics.curve_summary(hull, singles)["auc"] == pytest.approx(0.5)


def test_frontier_keeps_only_undominated_points_and_clips_costs():
    points = np.array([[0.0, 0.2], [0.5, 0.7], [0.6, 0.5], [1.0, 0.8], [2.0, 0.9]])
    front = metrics.pareto_frontier(points)
    assert front.tolist() == [[0.0, 0.2], [0.5, 0.7], [1.0, 0.8], [2.0, 0.9]]
    # 0.5 * (0.2 + 0.7) / 2 + 0.5 * (0.7 + 0.8) / 2; beyond cost 1 does not count
    assert metrics.frontier_area(points, 0.0, 1.0) == pytest.approx(0.225 + 0.375)


def test_concave_hull_drops_points_below_the_chord():
    hull = metrics.concave_hull(np.array([[0, 0.0], [1, 0.2], [2, 1.0]]))
    assert hull.tolist() == [[0, 0.0], [2, 1.0]]


def test_summary_reports_uplift_at_lower_cost_and_cost_to_match():
    singles = metrics.SingleModels(["weak", "strong"], np.array([0.5, 0.8]), np.zeros(2), np.array([1.0, 10.0]))
    points = np.array([[4.0, 0.8], [8.0, 0.84], [10.5, 0.9]])
    s = metrics.curve_summary(points, singles)
    assert s["best_ar"] == pytest.approx(0.84)  # 0.9 costs more than the strong model
    assert s["best_ar_cost_pct"] == pytest.approx(80.0)
    assert s["uplift_pct"] == pytest.approx(5.0)
    assert s["cost_to_match_pct"] == pytest.approx(40.0)
    assert s["pauc"] > 0


def test_cost_to_match_is_none_when_never_matched():
    singles = metrics.SingleModels(["weak", "strong"], np.array([0.5, 0.8]), np.zeros(2), np.array([1.0, 10.0]))
    assert metrics.curve_summary(np.array([[5.0, 0.6]]), singles)["cost_to_match_pct"] is None


def test_oracle_takes_the_cheapest_accepted_model():
    accept = np.array([[True, True], [True, False]])
    costs = np.array([[5.0, 1.0], [5.0, 1.0]])
    o = metrics.oracle(accept, np.ones((2, 2)), costs)
    assert o == {"ar": 1.0, "quality": 1.0, "cost_usd": 6.0}


def test_routed_points_sum_costs_and_average_acceptance():
    accept = np.array([[True, False], [False, True]])
    costs = np.array([[2.0, 1.0], [2.0, 1.0]])
    pts = metrics.routed_points(np.array([[0, 1], [1, 1]]), accept, np.zeros((2, 2)), costs)
    assert pts[:, :2].tolist() == [[3.0, 1.0], [2.0, 0.5]]


def test_knob_path_runs_from_always_the_anchor_through_the_argmax_to_cheaper_models():
    from tagrouter.core.decision import choose
    from tagrouter.offline.sweep import knob_path

    rng = np.random.default_rng(2)
    scores, costs = rng.random((200, 3)), np.array([1.0, 5.0, 20.0]) * (rng.random((200, 1)) + 0.5)
    anchor = 2
    margins, lambdas = knob_path(scores, costs, 0.0, anchor)
    assert (margins >= 0).all() and (lambdas >= 0).all() and ((margins == 0) | (lambdas == 0)).all()
    choices = choose(scores, costs, lambdas[:, None, None], 0.0, margins[:, None, None], anchor)
    assert (choices[np.argmax(margins)] == anchor).all()  # the largest margin: always the anchor
    argmax = scores.argmax(axis=1)
    assert any((c == argmax).all() for c in choices[margins == 0])  # lambda = 0: the plain argmax
    # every query that leaves the anchor at margin 0 gets one intermediate margin value or more
    shares = sorted({float(np.mean(c == anchor)) for c in choices[margins > 0]})
    assert len(shares) > 10


def test_knob_path_has_no_margin_part_when_the_argmax_is_always_the_anchor():
    from tagrouter.offline.sweep import knob_path, knob_values

    scores = np.array([[0.1, 0.2, 0.9], [0.3, 0.1, 0.8]])
    costs = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    margins, lambdas = knob_path(scores, costs, 0.0, 2)
    assert (margins == 0).all() and np.array_equal(lambdas, knob_values(scores, costs, 0.0))


@pytest.mark.parametrize("cost_scale_usd", [0.0, 0.004, 0.001])
@pytest.mark.parametrize("tied", [False, True])
def test_choices_along_the_cost_knob_are_the_rules_own(cost_scale_usd, tied):
    """The evaluation's fast sweep gives, at every knob value, exactly what `decision.choose` gives:
    with many exact ties of scores and costs too (ties go to the cheaper model)."""
    from tagrouter.core.decision import choose
    from tagrouter.offline.sweep import LAMBDAS, choices_along, knob_values

    rng = np.random.default_rng(3)
    for _ in range(60):
        q, m = int(rng.integers(1, 60)), int(rng.integers(2, 12))
        if tied:
            scores, costs = rng.integers(0, 4, (q, m)) / 4.0, rng.integers(0, 4, (q, m)) * 1e-3  # 1e-3 / 0.001: exact
        else:
            scores, costs = rng.random((q, m)), rng.random((q, m)) * 1e-2
        weights = np.concatenate([LAMBDAS, knob_values(scores, costs, cost_scale_usd), rng.random(20) * 3,
                                  np.arange(33) / 16])  # dyadic: some land exactly on a crossing
        rng.shuffle(weights)
        expected = choose(scores, costs, weights[:, None, None], cost_scale_usd)
        assert np.array_equal(choices_along(scores, costs, weights, cost_scale_usd), expected)


@pytest.mark.parametrize("scores, costs, weights, cost_scale_usd", [
    # scores one ulp apart (0.3 and 0.1 + 0.2): tied, so the lower index of the equal-cost pair
    ([[0.3, 0.1 + 0.2, 0.6]], [[1.0, 1.0, 2.0]], [0.0, 0.3, 1.0, 100.0], 0.0),
    # a pricier model within the tie tolerance above the chosen one, and a cheaper third
    ([[1.0, 1.0 + 0.8e-12, 1.0 - 1.3e-12]], [[1e-12, 2e-12, 0.0]], [0.0, 0.2, 0.4, 0.5, 0.6, 1.0], 1.0),
    # three lines through one point, weights inside the tie tolerance just before it
    ([[1.0, 0.5, 0.0]], [[3.0, 2.0, 1.0]], [0.5 - 1e-12, 0.5 - 0.75e-12, 0.5 - 0.4e-12, 0.5], 1.0),
    # every cost zero under the relative rule: the best score, ties to the first
    ([[0.2, 0.7, 0.7]], [[0.0, 0.0, 0.0]], [0.0, 1.0], 0.0),
])
def test_choices_along_the_cost_knob_near_ties(scores, costs, weights, cost_scale_usd):
    from tagrouter.core.decision import choose
    from tagrouter.offline.sweep import choices_along

    scores, costs, weights = np.array(scores), np.array(costs), np.array(weights)
    expected = choose(scores, costs, weights[:, None, None], cost_scale_usd)
    assert np.array_equal(choices_along(scores, costs, weights, cost_scale_usd), expected)


def test_choices_along_refuses_a_negative_cost_weight():
    from tagrouter.offline.sweep import choices_along

    with pytest.raises(ValueError, match="cost weights"):
        choices_along(np.ones((2, 2)), np.ones((2, 2)), np.array([0.5, -1.0]))
