"""How much a router could gain over the best single model, measured on the selection rows.

When no router's curve beats the best single model, is that the routers' fault or the data's?
A router beats the best model b at no more than b's cost only by moving queries from b to a
model m no pricier than b where m is accepted and b is not, more often than the reverse. This
measures how far the query embeddings predict that gain directly, with no routing rule between:
for each query, gain(q, m) = accepted(q, m) - accepted(q, b) is predicted out-of-fold (kNN and
ridge regression on the embeddings, every setting of the baselines' grids), the queries are
moved in order of their best predicted gain, and the largest running total of the true gain over
that order is the headroom one predictor finds. The largest over all predictors is an optimistic
figure (the best of many orders, chosen after the fact); random orders give the level that
signal has to clear. When even that optimistic figure stays at the random level, no router fed
with these embeddings can be expected to beat the best model on the suite.
"""
from __future__ import annotations

import numpy as np

from tagrouter import baselines

RANDOM_ORDERS = 200
SEED = 0


def gains(accept: np.ndarray, best: int) -> np.ndarray:
    """[Q, M] accepted(q, m) - accepted(q, best): +1 where m rescues a query the best model fails."""
    a = accept.astype(np.int64)
    return a - a[:, [best]]


def best_running_gain(predicted: np.ndarray, true: np.ndarray, eligible: np.ndarray) -> tuple[int, int]:
    """(largest running total of the true gain, queries moved to reach it) when each query goes to its
    eligible model of highest predicted gain, queries taken in order of that prediction (0, 0 when
    moving none is best). predicted, true: [Q, M]; eligible: [M] bool."""
    if not eligible.any() or not len(predicted):
        return 0, 0
    masked = np.where(eligible[None, :], predicted, -np.inf)
    target = masked.argmax(axis=1)
    order = np.argsort(-masked.max(axis=1), kind="stable")
    running = np.cumsum(true[order, target[order]])
    at = int(np.argmax(running))
    return (int(running[at]), at + 1) if running[at] > 0 else (0, 0)


def random_running_gain(true: np.ndarray, target: int, orders: int = RANDOM_ORDERS, seed: int = SEED) -> float:
    """Mean over random query orders of the largest running total of the true gain when every query
    goes to model `target`: what an order with no signal finds."""
    rng = np.random.default_rng(seed)
    column = true[:, target]
    return float(np.mean([max(0, int(np.cumsum(column[rng.permutation(len(column))]).max()))
                          for _ in range(orders)]))


def out_of_fold(train_x: np.ndarray, train_y: np.ndarray, x_rest: np.ndarray,
                parts: list[np.ndarray], train_rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(predictor name, [len(train_rows) + len(x_rest), M] predictions): train rows out-of-fold over
    `parts` (row ids, as `evaluate.cv_folds` gives them), the other rows (`x_rest`) from the fit on
    all of train. Without parts the train rows' predictions are zeros: use the rest only."""
    def fits(fit_x, fit_y, x):
        by_k = baselines.knn_predict(fit_x, fit_y, x)
        ridge = baselines.Ridge(fit_x, fit_y)
        return ([(f"knn k={k}", p) for k, p in by_k.items()]
                + [(f"ridge alpha={a:g}", ridge.predict(x, a)) for a in baselines.RIDGE_ALPHAS])

    rest = fits(train_x, train_y, x_rest)
    out = [(name, np.zeros((len(train_rows), train_y.shape[1]))) for name, _ in rest]
    position = {row: i for i, row in enumerate(train_rows)}
    for part in parts:
        held = np.array([position[r] for r in part])
        kept = np.setdiff1d(np.arange(len(train_rows)), held)
        for (_, whole), (_, p) in zip(out, fits(train_x[kept], train_y[kept], train_x[held])):
            whole[held] = p
    return [(name, np.concatenate([whole, p])) for (name, whole), (_, p) in zip(out, rest)]


def measure(embeddings: np.ndarray, accept: np.ndarray, list_prices: np.ndarray, names: list[str],
            train: np.ndarray, valid: np.ndarray, parts: list[np.ndarray]) -> dict:
    """The headroom document of one suite on its selection rows (train out-of-fold over `parts`, then
    valid; valid alone when there are no parts). The best model is the one with the highest accept rate on train (ties: the cheaper by
    list price); eligible are the other models no pricier than it by list price."""
    rate = accept[train].mean(axis=0)
    top = np.flatnonzero(rate >= rate.max() - 1e-12)
    best = int(top[np.argmin(list_prices[top])])
    eligible = (list_prices <= list_prices[best]) & (np.arange(len(names)) != best)
    # the rows `tagrouter eval` selects on: train out-of-fold and valid, or valid alone without folds
    rows = np.concatenate([train, valid]) if parts else valid
    true = gains(accept[rows], best)
    misses = int((~accept[rows, best]).sum())
    rescuable = int(((true == 1) & eligible[None, :]).any(axis=1).sum())
    train_gain = gains(accept[train], best).mean(axis=0)
    found = {}
    if eligible.any():
        for name, predicted in out_of_fold(embeddings[train], gains(accept[train], best).astype(np.float64),
                                           embeddings[valid], parts, train):
            predicted = predicted if parts else predicted[len(train):]
            gain, moved = best_running_gain(predicted, true, eligible)
            found[name] = {"gain_queries": gain, "moved_queries": moved}
    top_name = max(found, key=lambda n: (found[n]["gain_queries"], -found[n]["moved_queries"]), default=None)
    alternative = int(np.flatnonzero(eligible)[np.argmax(train_gain[eligible])]) if eligible.any() else None
    return {
        "rows": int(len(rows)),
        "best_model": names[best],
        "best_model_ar": float(accept[rows, best].mean()),
        "best_model_misses": misses,
        "rescuable": rescuable,
        "best_predictor": top_name,
        "best_gain_queries": found[top_name]["gain_queries"] if top_name else 0,
        "best_gain_moved_queries": found[top_name]["moved_queries"] if top_name else 0,
        "random_order_alternative": None if alternative is None else names[alternative],
        "random_order_gain_queries": 0.0 if alternative is None else random_running_gain(true, alternative),
        "predictors": found,
    }
