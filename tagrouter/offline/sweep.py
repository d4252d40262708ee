"""The knob sweep: the decision rule's one path of settings, and the routing it gives along it.

Every router's curve is traced the same way: the quality margin toward the router's anchor
model from "always the anchor" down to 0, then the cost knob lambda from 0 to "always the
cheapest" (`knob_path`). The knob values are the fixed grid `LAMBDAS` plus values just past
quantiles of the queries' own switch points, so no group of queries is stepped over.
`choices_along` is `decision.choose` along many lambdas at once, exactly.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tagrouter.core import decision
from tagrouter.offline import quality_metrics as metrics

# The cost knob sweep shared by every router: 0 (best expected quality) up to "always cheapest".
LAMBDAS = np.concatenate([[0.0], np.logspace(-4, 2, 121)])
# Plus, per router and rows, knob values at quantiles of the queries' first switch points (the lambda at
# which a query leaves its lambda = 0 choice for a cheaper model): a fixed log grid steps over whole
# groups of queries where a router's score gaps are concentrated, near cost 100% above all.
SWITCH_QUANTILES = 64
# The quality margin (decision.py) only changes a query's choice at lambda = 0 when it passes the
# query's margin switch point, so its path is values just past quantiles of those points and past the
# largest (always the anchor): none where the plain argmax already picks the anchor for every query.

# A knob path: (scores [Q, M], estimated costs [Q, M], cost scale, anchor) -> (margins [K], lambdas [K]).
KnobPath = Callable[..., tuple[np.ndarray, np.ndarray]]


def switch_points(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0) -> np.ndarray:
    """[Q] the smallest knob at which each query leaves its lambda = 0 choice for a cheaper model
    (inf where no cheaper model exists): from predictions and estimated costs only."""
    first = decision.choose(scores, costs, 0.0, cost_scale_usd)
    rows = np.arange(len(first))
    scale = cost_scale_usd if cost_scale_usd > 0 else costs.max(axis=1, keepdims=True)
    saved = (costs[rows, first][:, None] - costs) / np.where(np.asarray(scale) > 0, scale, 1.0)  # [Q, M]
    gap = scores[rows, first][:, None] - scores
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.where(saved > 0, gap / np.where(saved > 0, saved, 1.0), np.inf)
    return np.maximum(at, 0.0).min(axis=1)


def past_quantiles(points: np.ndarray, quantiles: int) -> np.ndarray:
    """Values just past `quantiles` evenly spaced quantiles of the finite `points` (none when there are none)."""
    points = points[np.isfinite(points)]
    if not len(points) or quantiles <= 0:
        return np.zeros(0)
    return np.quantile(points, (np.arange(quantiles) + 0.5) / quantiles) * (1 + 1e-9) + 1e-12


def knob_values(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0,
                quantiles: int = SWITCH_QUANTILES) -> np.ndarray:
    """LAMBDAS plus knob values just past quantiles of the queries' first switch points."""
    extra = past_quantiles(switch_points(scores, costs, cost_scale_usd), quantiles)
    return np.unique(np.concatenate([LAMBDAS, extra])) if len(extra) else LAMBDAS


def margin_switch_points(scores: np.ndarray, costs: np.ndarray, anchor: int,
                         cost_scale_usd: float = 0.0) -> np.ndarray:
    """[Q] the quality margin at which each query leaves its lambda = 0 choice for the anchor
    (S(choice) - S(anchor); inf where the choice is the anchor already): predictions only."""
    first = decision.choose(scores, costs, 0.0, cost_scale_usd)
    gap = scores[np.arange(len(first)), first] - scores[:, anchor]
    return np.where(first == anchor, np.inf, np.maximum(gap, 0.0))


def knob_path(scores: np.ndarray, costs: np.ndarray, cost_scale_usd: float = 0.0, anchor: int | None = None,
              quantiles: int = SWITCH_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    """(quality margins [K], lambdas [K]): the decision rule's one path, from "always the anchor"
    to "always the cheapest". The margin takes values just past quantiles of the queries' margin
    switch points at lambda = 0 and just past the largest, then lambda sweeps `knob_values` at
    margin 0. Without an anchor, the lambda part alone."""
    lambdas = knob_values(scores, costs, cost_scale_usd, quantiles)
    if anchor is None:
        return np.zeros_like(lambdas), lambdas
    points = margin_switch_points(scores, costs, anchor, cost_scale_usd)
    points = points[np.isfinite(points)]
    if not len(points):
        return np.zeros_like(lambdas), lambdas
    margins = np.unique(np.concatenate([past_quantiles(points, quantiles), [points.max() * (1 + 1e-9) + 1e-12]]))
    return (np.concatenate([margins, np.zeros_like(lambdas)]),
            np.concatenate([np.zeros_like(margins), lambdas]))


def choices_along(scores: np.ndarray, costs: np.ndarray, cost_weights: np.ndarray,
                  cost_scale_usd: float = 0.0) -> np.ndarray:
    """[K, Q] `decision.choose(scores, costs, w, cost_scale_usd)` for every w >= 0 of `cost_weights`
    [K], without the [K, Q, M] utilities (most of `tagrouter eval`'s time on an 11-model suite).

    The rule picks, among the models whose utility S - w * cost / scale is within TIED_UTILITY of
    the best, the cheapest. Model m is within it of every other line exactly on a band of w: from
    lo(m) (where the pricier lines stop beating it by more) to hi(m) (where a cheaper one starts
    to). The cheapest model whose band has started is always inside its band (a cheaper line that
    beat it by more would have a band started too), so the choice at w is the cheapest model with
    lo(m) <= w: a running minimum over the bands' starts. O(Q M^2 + K Q) instead of O(K Q M)."""
    scores = np.asarray(scores, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    weights = np.asarray(cost_weights, dtype=np.float64)
    if np.any(weights < 0) or np.any(np.isnan(weights)):
        raise ValueError("cost weights must be >= 0")
    if not np.isfinite(scores).all():  # the bands need finite differences: the rule itself then
        return decision.choose(scores, costs, weights[:, None, None], cost_scale_usd).reshape(len(weights), -1)
    n_queries, n_models = scores.shape
    if cost_scale_usd > 0:
        unit = costs / cost_scale_usd
    else:
        top = costs.max(axis=1, keepdims=True)
        unit = np.divide(costs, top, out=np.zeros_like(costs), where=top > 0)
    tied = decision.TIED_UTILITY
    above = scores[:, :, None] - scores[:, None, :]  # [Q, j, m] S(j) - S(m)
    steeper = unit[:, :, None] - unit[:, None, :]  # [Q, j, m] unit(j) - unit(m)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        meet = (above - tied) / steeper  # the w from which m is within `tied` of j (j pricier), until which (j cheaper)
    lo = np.where(steeper > 0, meet, -np.inf).max(axis=1)
    hi = np.where(steeper < 0, meet, np.inf).min(axis=1)
    ever = np.where(steeper == 0, above <= tied, True).all(axis=1) & (lo <= hi)
    lo = np.where(ever, np.maximum(lo, 0.0), np.inf)  # [Q, M]
    # rank of each model by (cost, index): the rule's tie-break
    rank = np.lexsort((np.broadcast_to(np.arange(n_models), costs.shape), costs), axis=1).argsort(axis=1)
    by_start = np.argsort(lo, axis=1, kind="stable")
    best_rank = np.minimum.accumulate(np.take_along_axis(rank, by_start, axis=1), axis=1)
    path = np.take_along_axis(np.argsort(rank, axis=1), best_rank, axis=1)  # [Q, M] choice once j+1 bands started
    starts = np.take_along_axis(lo, by_start, axis=1)  # [Q, M] ascending
    order = np.argsort(weights, kind="stable")
    started = np.zeros((len(weights) + 1, n_queries), dtype=np.int64)
    rows = np.broadcast_to(np.arange(n_queries)[:, None], starts.shape)
    np.add.at(started, (np.searchsorted(weights[order], starts, side="left"), rows), 1)
    count = np.cumsum(started, axis=0)[:-1]  # [K, Q] bands started at each sorted weight (>= 1: the argmax's)
    out = np.empty((len(weights), n_queries), dtype=np.int64)
    out[order] = np.take_along_axis(path.T, np.maximum(count - 1, 0), axis=0)
    return out


def routed(accept: np.ndarray, quality: np.ndarray, true_costs: np.ndarray, predicted: np.ndarray,
           estimated_costs: np.ndarray, cost_scale_usd: float = 0.0, anchor: int | None = None,
           path: KnobPath = knob_path) -> np.ndarray:
    """[K, 3] (true total cost, AR, quality) of the decision rule along `path` (by default
    `knob_path`: the quality margin toward `anchor` when one is given, then lambda), for queries
    with these accept [Q, M], quality [Q, M] and true costs [Q, M], from a router's predicted
    scores and estimated costs [Q, M]."""
    choices = choices_on_path(predicted, estimated_costs, cost_scale_usd, anchor, path)
    return metrics.routed_points(choices, accept, quality, true_costs)


def choices_on_path(predicted: np.ndarray, estimated_costs: np.ndarray, cost_scale_usd: float = 0.0,
                    anchor: int | None = None, path: KnobPath = knob_path) -> np.ndarray:
    """[K, Q] the model chosen for each query at each knob point of `path`, in the path's order
    (predictions only: the knob values are fixed before any outcome is looked at)."""
    s, c = predicted, estimated_costs
    margins, lambdas = path(s, c, cost_scale_usd, anchor)
    choices = np.empty((len(lambdas), len(s)), dtype=np.int64)  # [K, Q]
    on_margin = margins != 0  # the quality margin's part of the path (few values): the rule itself
    if on_margin.any():
        choices[on_margin] = decision.choose(s, c, lambdas[on_margin, None, None], cost_scale_usd,
                                             margins[on_margin, None, None], anchor)
    if (~on_margin).any():
        choices[~on_margin] = choices_along(s, c, lambdas[~on_margin], cost_scale_usd)
    return choices
