"""tagrouter/headroom.py: finds a rescue signal where the embeddings carry one, and none where they do not."""
import numpy as np

from tagrouter import headroom


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
    train, valid = rows[:320], rows[320:]
    parts = np.array_split(np.random.default_rng(0).permutation(train), 5)
    return headroom.measure(x, accept, np.array([40.0, 1.0]), ["pricey", "cheap"], train, valid, parts)


def test_a_predictable_rescue_shows_as_headroom_well_above_random_orders():
    got = _measure(*_suite(np.random.default_rng(1), signal=True))
    assert got["best_model"] == "pricey" and got["rows"] == 400
    assert got["best_model_misses"] == got["rescuable"] > 20
    assert got["best_gain_queries"] >= 0.5 * got["rescuable"]
    assert got["best_gain_queries"] > 10 * max(got["random_order_gain_queries"], 1.0)


def test_scattered_rescues_show_no_headroom():
    got = _measure(*_suite(np.random.default_rng(1), signal=False))
    assert got["best_model_misses"] > 20
    assert got["best_gain_queries"] <= 5


def test_no_cheaper_model_means_no_headroom():
    x, accept = _suite(np.random.default_rng(2), signal=True)
    rows = np.arange(len(x))
    got = headroom.measure(x, accept, np.array([1.0, 40.0]), ["best", "pricier"], rows[:320], rows[320:], [])
    assert got["rows"] == 80 and got["best_gain_queries"] == 0 and got["predictors"] == {}
    assert got["random_order_alternative"] is None


def test_running_gain_follows_the_predicted_order():
    predicted = np.array([[0.0, 0.9], [0.0, 0.1], [0.0, 0.5]])
    true = np.array([[0, 1], [0, -1], [0, -1]])
    assert headroom.best_running_gain(predicted, true, np.array([False, True])) == (1, 1)
    assert headroom.best_running_gain(-predicted, true, np.array([False, True])) == (0, 0)
