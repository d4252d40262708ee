"""How far estimated costs are from what the answers cost, and the cost estimator chosen by it.

Two errors per model, both what a budget owner asks (issue 15):
- MdAPE, the median over queries of |estimated - actual| / actual: how far off one query's
  estimate typically is;
- the total error, sum(estimated) / sum(actual) - 1: how far off the bill is.

The actual cost is the suite's `cost_usd`: the real cost where the suite has it (RouterBench),
else its token counts at list prices (`real_cost_models` says which). The naive estimate prices
each model's mean train answer length.

TagRouter's estimator is its expected answer length, the weighted mean of its tags' mean lengths,
each pulled toward the model's overall mean by `ScoringParams.length_prior_strength`: 0 (the
scores' prior strength, as before) through larger pseudo-counts to MAX_PARAM (each model's overall
mean, the naive estimate). `choose_length_strength` picks it on the selection rows (train
out-of-fold and valid) by `selection_loss`; the router and the evaluation then price with it.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from tagrouter.core.limits import MAX_PARAM
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline import selection
from tagrouter.offline.prepare import Prepared, estimated_costs, singles_on
from tagrouter.offline.suite import Suite

if TYPE_CHECKING:
    from tagrouter.offline.routers.base import Fitted, Router

# 0 = the scores' prior strength (the estimate before this choice existed); MAX_PARAM = the overall mean
LENGTH_STRENGTHS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, MAX_PARAM)
REAL_COST_TOLERANCE = 1e-3  # relative gap between cost_usd and tokens at list prices that makes a cost real


def real_cost_models(suite: Suite) -> np.ndarray:
    """[M] whether the suite's cost_usd for the model is a real cost, not its token counts at list prices
    (more than 1% of its rows differ from the latter by more than REAL_COST_TOLERANCE)."""
    from_tokens = estimated_costs(suite, suite.output_tokens)
    gap = np.abs(from_tokens - suite.costs) > REAL_COST_TOLERANCE * np.maximum(suite.costs, 1e-12)
    return gap.mean(axis=0) > 0.01


def naive_output_tokens(suite: Suite, rows: np.ndarray) -> np.ndarray:
    """[len(rows), M] each model's mean answer length on the train split, for every query."""
    mean = suite.output_tokens[suite.rows("train")].mean(axis=0)
    return np.broadcast_to(mean, (len(rows), len(mean))).copy()


def errors(estimated: np.ndarray, actual: np.ndarray) -> dict[str, np.ndarray]:
    """{"mdape": [M], "total_error": [M]} of estimated against actual costs [R, M]; queries that cost
    nothing are left out of the MdAPE (nan where none is left)."""
    estimated, actual = np.asarray(estimated, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    paid = actual > 0
    ape = np.where(paid, np.abs(estimated - actual) / np.where(paid, actual, 1.0), np.nan)
    mdape = np.array([np.median(col[np.isfinite(col)]) if np.isfinite(col).any() else np.nan for col in ape.T])
    spent = actual.sum(axis=0)
    total = np.divide(estimated.sum(axis=0), spent, out=np.full(spent.shape, np.nan), where=spent > 0) - 1.0
    return {"mdape": mdape, "total_error": total}


def selection_loss(estimated: np.ndarray, actual: np.ndarray) -> float:
    """What the estimator is chosen by: the mean over models of MdAPE plus |total error| (both
    errors of the issue's must-show, weighed alike)."""
    e = errors(estimated, actual)
    return float(np.nanmean(e["mdape"]) + np.nanmean(np.abs(e["total_error"])))


def choose_length_strength(prep: Prepared, router: Router, result: selection.RouterResult, full: Fitted,
                           folded: list, rows: np.ndarray) -> selection.RouterResult:
    """`result` (a TagRouter setting chosen on the selection rows `rows`) with the length prior strength
    of LENGTH_STRENGTHS whose out-of-fold estimated costs have the lowest `selection_loss` on `rows`
    (the earlier, today's, on ties), its selection AUC and test curve recomputed at that estimate;
    `result` unchanged (today's estimate) when that strength lowers the selection AUC."""
    suite = prep.suite
    losses, best = {}, None
    for k in LENGTH_STRENGTHS:
        setting = {**result.setting, "length_prior_strength": k}
        prediction = selection.out_of_fold(full, folded, setting, len(suite.queries))
        est = estimated_costs(suite, prediction.output_tokens)
        losses[k] = selection_loss(est[rows], suite.costs[rows])
        if best is None or losses[k] < best[1] - 1e-12:
            best = (setting, losses[k], prediction.scores, est)
    setting, _, predicted, est = best
    singles = singles_on(prep, rows)
    lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
    pts = selection.sweep(prep, rows, predicted, est, setting["cost_scale_usd"], result.anchor, router.knob_path)
    auc = metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)
    record = {"rule": "mean over models of MdAPE + |total error|, selection rows; kept only if the selection "
                      "AUC does not fall",
              "loss_by_length_prior_strength": {f"{k:g}": round(v, 5) for k, v in losses.items()},
              "best_by_cost": setting["length_prior_strength"], "selection_auc_at_best": auc}
    # The estimate also enters the decision rule: a better cost estimate that routes worse on the
    # selection rows than the setting was chosen for is not worth it there (seen on both ae2 suites).
    if auc < result.selection_auc - 1e-12:
        return dataclasses.replace(result, extra=dict(result.extra, cost_estimate={**record, "chosen": 0.0}))
    points, routing = selection.on_test(prep, router, predicted, est, setting, result.anchor)
    extra = dict(result.extra, cost_estimate={**record, "chosen": setting["length_prior_strength"]})
    return dataclasses.replace(result, setting=setting, selection_auc=auc, test_points=points, extra=extra,
                               test=routing)
