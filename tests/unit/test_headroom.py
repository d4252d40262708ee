"""tagrouter/headroom.py: finds a rescue signal where the embeddings carry one, and none where they do not."""
import numpy as np

from tagrouter.offline import headroom


def _suite(rng, signal: bool):
    """400 queries in two well-separated clusters; a cheap model rescues the pricey best model on most
    of cluster B's queries (signal) or on the same number of queries scattered at random (no signal)."""
    q, d = 400, 16
    cluster = rng.random(q) < 0.15
    x = rng.normal(size=(q, d)) * 0.3
    x[:, 0] += np.where(cluster, 3.0, -3.0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rescued = cluster & (rng.random(q) < 0.8) if signal else rng.permutation(cluster & (rng.random(q) < 0.8))
    accept = np.ones((q, 2), dtype=bool)
    accept[:, 1] = rng.random(q) < 0.4  # the cheap model: usually wrong...
    accept[rescued, 0], accept[rescued, 1] = False, True  # ...but right where the best model fails
    return x, accept


def _measure(x, accept):
    rows = np.arange(len(x))
    train = rows[:320]
    parts = np.array_split(np.random.default_rng(0).permutation(train), 5)
    return headroom.measure(x, accept, np.array([40.0, 1.0]), ["pricey", "cheap"], 0, rows, train, parts)


def test_a_predictable_rescue_shows_as_headroom_well_above_random_orders():
    got = _measure(*_suite(np.random.default_rng(1), signal=True))
    assert got["best_model"] == "pricey" and got["rows"] == 400
    assert got["best_model_misses"] == got["rescuable"] > 20
    assert got["best_gain_queries"] >= 0.5 * got["rescuable"]
    assert got["best_gain_queries"] > 5 * got["random_orders_gain_queries"] > 0


def test_scattered_rescues_show_no_headroom():
    got = _measure(*_suite(np.random.default_rng(1), signal=False))
    assert got["best_model_misses"] > 20
    assert got["best_gain_queries"] <= 5


def test_no_cheaper_model_means_no_headroom():
    x, accept = _suite(np.random.default_rng(2), signal=True)
    rows = np.arange(len(x))
    got = headroom.measure(x, accept, np.array([1.0, 40.0]), ["best", "pricier"], 0, rows[320:], rows[:320], [])
    assert got["rows"] == 80 and got["best_gain_queries"] == 0 and got["predictors"] == {}
    assert got["random_order_alternative"] is None


def test_scattered_rescues_stay_within_what_as_many_random_orders_find():
    got = _measure(*_suite(np.random.default_rng(4), signal=False))
    assert got["predictors_tried"] == 16
    assert got["best_gain_queries"] <= 2 * got["random_orders_gain_queries"] + 2


def test_the_order_is_cut_only_between_different_predictions():
    predicted = np.array([[0.0, 0.5], [0.0, 0.5], [0.0, 0.1]])
    true = np.array([[0, 1], [0, -1], [0, 1]])  # a cut after the first row would split a tie
    assert headroom.best_running_gain(predicted, true, np.array([False, True])) == (1, 3)


def test_a_fold_fit_answers_for_every_k_of_the_whole_train_set():
    x = np.random.default_rng(5).normal(size=(230, 8))
    target = np.random.default_rng(6).normal(size=(230, 2))
    train = np.arange(220)  # k = 200 holds for train, not for a fold's 176 rows
    parts = np.array_split(train, 5)
    got = headroom.predictions(x, target, train, parts)
    assert "knn k=200" in got and "ridge alpha=1000" in got
    for name, p in got.items():  # every train row predicted out-of-fold by its own setting
        assert np.all(np.abs(p[train]).sum(axis=1) > 0), name


def test_running_gain_follows_the_predicted_order():
    predicted = np.array([[0.0, 0.9], [0.0, 0.1], [0.0, 0.5]])
    true = np.array([[0, 1], [0, -1], [0, -1]])
    assert headroom.best_running_gain(predicted, true, np.array([False, True])) == (1, 1)
    assert headroom.best_running_gain(-predicted, true, np.array([False, True])) == (0, 0)
