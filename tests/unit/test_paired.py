"""The paired bootstrap of AUC differences (tagrouter/offline/paired.py) on synthetic routings."""
import numpy as np

from tagrouter.offline import paired
from tagrouter.offline import quality_metrics as metrics


def synthetic(n=200, m=3, k=40, seed=1):
    rng = np.random.default_rng(seed)
    accept = rng.random((n, m)) < np.array([0.5, 0.7, 0.9])[:m]
    costs = rng.random((n, m)) * np.array([1.0, 3.0, 10.0])[:m]
    choices = rng.integers(0, m, size=(k, n))
    return accept, costs, choices


def test_a_resample_of_every_query_once_gives_the_reported_auc():
    accept, costs, choices = synthetic()
    singles = metrics.single_models(["a", "b", "c"], accept, np.zeros(accept.shape), costs)
    points = metrics.routed_points(choices, accept, np.zeros(accept.shape), costs)
    once = np.ones((1, len(accept)))
    assert paired.resampled_aucs(choices, accept, costs, once)[0] == metrics.curve_summary(points, singles)["auc"]
    hull = metrics.concave_hull(np.stack([singles.cost, singles.ar], axis=1))
    assert paired.resampled_aucs(None, accept, costs, once)[0] == metrics.curve_summary(hull, singles)["auc"]


def test_resamples_draw_every_query_count_times_and_are_the_same_for_one_seed():
    counts = paired.resample_counts(50, 30, seed=3)
    assert counts.shape == (30, 50) and (counts.sum(axis=1) == 50).all()
    assert (counts == paired.resample_counts(50, 30, seed=3)).all()


def test_a_router_compared_with_itself_is_level_and_a_clearly_better_one_ahead():
    accept, costs, _ = synthetic(n=300)
    oracle = np.where(accept, costs, np.inf).argmin(axis=1)
    oracle = np.where(accept.any(axis=1), oracle, 2)
    worst = np.where(~accept, -costs, -np.inf).argmax(axis=1)  # a model that fails, where one does
    counts = paired.resample_counts(len(accept), 200)
    diffs = paired.differences({"tagrouter": oracle[None], "same": oracle[None], "bad": worst[None], "random": None},
                               accept, costs, counts)
    assert (diffs["same"] == 0).all()
    assert paired.summary(0.0, diffs["same"])["call"] == "level"
    assert paired.summary(float(diffs["bad"].mean()), diffs["bad"])["call"] == "ahead"
    assert paired.summary(float(diffs["random"].mean()), diffs["random"])["call"] == "ahead"
    assert paired.summary(-0.1, -diffs["bad"])["call"] == "behind"
