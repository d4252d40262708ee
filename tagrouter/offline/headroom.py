"""How much a router could gain over the best single model, measured on the selection rows.

When no router's curve beats the best single model b, is that the routers' fault or the data's?
When b is also the priciest model (every shared suite), a router beats it at no more than its
cost only by moving queries from b to a model m where m is accepted and b is not, more often
than the reverse (in other pools it could also buy a pricier model with what it saves; that part
is not measured here). This measures how far the query embeddings predict that gain directly,
with no routing rule in between: gain(q, m) = accepted(q, m) - accepted(q, b) for every m no
pricier than b (by list price) is predicted out-of-fold by kNN and ridge regression on the
embeddings (every setting of the baselines' grids); the queries are moved in order of their best
predicted gain, cut only where that prediction changes, and the largest running total of the
true gain is what one predictor finds. The largest over all predictors is optimistic (the best
of many orders, chosen after the fact), so it is compared with the same best-of-as-many over
random orders: when it does not clear that, no router fed with these embeddings can be expected
to beat b.
"""
from __future__ import annotations

import numpy as np

from tagrouter.offline import baselines

RANDOM_REPEATS = 200
SEED = 0


def gains(accept: np.ndarray, best: int) -> np.ndarray:
    """[Q, M] accepted(q, m) - accepted(q, best): +1 where m rescues a query the best model fails."""
    a = accept.astype(np.int64)
    return a - a[:, [best]]


def best_running_gain(predicted: np.ndarray, true: np.ndarray, eligible: np.ndarray) -> tuple[int, int]:
    """(largest running total of the true gain, queries moved to reach it) when each query goes to its
    eligible model of highest predicted gain, in order of that prediction, cutting only between
    different predictions (0, 0 when moving none is best). predicted, true: [Q, M]; eligible: [M]."""
    if not eligible.any() or not len(predicted):
        return 0, 0
    masked = np.where(eligible[None, :], predicted, -np.inf)
    target = masked.argmax(axis=1)
    value = masked.max(axis=1)
    order = np.argsort(-value, kind="stable")
    running = np.cumsum(true[order, target[order]])
    # a cut inside a run of equal predictions would depend on row order: keep the run's last position
    cuts = np.flatnonzero(np.append(value[order][1:] != value[order][:-1], True))
    at = int(cuts[np.argmax(running[cuts])])
    return (int(running[at]), at + 1) if running[at] > 0 else (0, 0)


def random_running_gain(true: np.ndarray, target: int, orders: int, repeats: int = RANDOM_REPEATS,
                        seed: int = SEED) -> float:
    """Mean over `repeats` of the best of `orders` random query orders (the largest running total of
    the true gain when every query goes to model `target`): what as many orders with no signal find."""
    rng = np.random.default_rng(seed)
    column = true[:, target]
    best = [max(max(0, int(np.cumsum(column[rng.permutation(len(column))]).max())) for _ in range(orders))
            for _ in range(repeats)]
    return float(np.mean(best))


def predictions(x: np.ndarray, target: np.ndarray, train: np.ndarray, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Predictor name -> [Q, M] predictions of `target` [Q, M] for every row, fitted on `train`; the
    train rows out-of-fold over `parts` (row ids, as `evaluate.cv_folds` gives them)."""
    ks = baselines.knn_ks(len(train))

    def fit(rows: np.ndarray, at: np.ndarray) -> dict[str, np.ndarray]:
        ridge = baselines.Ridge(x[rows], target[rows])
        return ({f"knn k={k}": p for k, p in baselines.knn_predict(x[rows], target[rows], x[at], ks).items()}
                | {f"ridge alpha={a:g}": ridge.predict(x[at], a) for a in baselines.RIDGE_ALPHAS})

    everywhere = fit(train, np.arange(len(x)))
    for part in parts:
        for name, p in fit(np.setdiff1d(train, part), part).items():
            everywhere[name][part] = p
    return everywhere


def measure(embeddings: np.ndarray, accept: np.ndarray, list_prices: np.ndarray, names: list[str], best: int,
            rows: np.ndarray, train: np.ndarray, parts: list[np.ndarray]) -> dict:
    """The headroom of one suite above model `best` (the best single model on train) on the selection
    `rows` (train out-of-fold over `parts`, and valid). Eligible: the other models no pricier than it
    by list price."""
    eligible = (list_prices <= list_prices[best]) & (np.arange(len(names)) != best)
    every = gains(accept, best)
    true = every[rows]
    found, alternative = {}, None
    if eligible.any():
        for name, predicted in predictions(embeddings, every.astype(np.float64), train, parts).items():
            gain, moved = best_running_gain(predicted[rows], true, eligible)
            found[name] = {"gain_queries": gain, "moved_queries": moved}
        train_gain = every[train].mean(axis=0)
        alternative = int(np.flatnonzero(eligible)[np.argmax(train_gain[eligible])])
    top = max(found, key=lambda n: (found[n]["gain_queries"], -found[n]["moved_queries"]), default=None)
    return {
        "rows": int(len(rows)),
        "best_model": names[best],
        "best_model_ar": float(accept[rows, best].mean()),
        "best_model_misses": int((~accept[rows, best]).sum()),
        "rescuable": int(((true == 1) & eligible[None, :]).any(axis=1).sum()),
        "predictors_tried": len(found),
        "best_predictor": top,
        "best_gain_queries": found[top]["gain_queries"] if top else 0,
        "best_gain_moved_queries": found[top]["moved_queries"] if top else 0,
        "random_order_alternative": None if alternative is None else names[alternative],
        "random_orders_gain_queries": 0.0 if alternative is None else random_running_gain(true, alternative, len(found)),
        "predictors": found,
    }
