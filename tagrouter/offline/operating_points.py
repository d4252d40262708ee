"""The knob's calibration table and recommended operating point, on the selection rows only.

`tagrouter fit` calls `calibration_table` with TagRouter's chosen setting: every query of the
selection rows (train predicted out-of-fold, and valid; never test) is routed along the
decision rule's knob path, and each setting's cost and accept rate are kept as percentages of
always using the priciest model and of the best single model's accept rate. The router
translates `max_cost_pct` / `min_quality_pct` through this table and serves `recommended`
when a request sets no knob.
"""
from __future__ import annotations

import numpy as np

from tagrouter.core.operating import Calibration, OperatingPoint
from tagrouter.offline import selection
from tagrouter.offline import sweep as knob
from tagrouter.offline.prepare import Prepared, list_prices

# The recommended point: the cheapest whose accept rate is within this many points (percentage
# points of accept rate) of the best single model's on the selection rows.
RECOMMENDED_AR_SLACK = 0.01


def recommend(points: list[OperatingPoint], best_ar: float, slack: float = RECOMMENDED_AR_SLACK) -> OperatingPoint:
    """The cheapest point whose accept rate is at least the best single model's minus `slack`
    (quality_pct is AR / best AR * 100); the best point when none is."""
    floor = 100.0 * (best_ar - slack) / best_ar if best_ar > 0 else 0.0
    good = [p for p in points if p.quality_pct >= floor - 1e-9]
    if not good:
        return max(points, key=lambda p: (p.quality_pct, -p.cost_pct))
    return min(good, key=lambda p: (p.cost_pct, -p.quality_pct, p.cost_weight))


def table(accept: np.ndarray, true_costs: np.ndarray, predicted: np.ndarray, estimated: np.ndarray,
          cost_scale_usd: float, anchor: int | None, top: int,
          path: knob.KnobPath = knob.knob_path) -> tuple[list[OperatingPoint], float]:
    """(points along the knob path, the best single model's AR) on some rows: each point's true
    cost as % of always using model `top`, its AR as % of the best single model's."""
    margins, lambdas = path(predicted, estimated, cost_scale_usd, anchor)
    routed = knob.routed(accept, np.zeros_like(true_costs), true_costs, predicted, estimated, cost_scale_usd,
                         anchor, lambda *_: (margins, lambdas))
    best_ar = float(accept.mean(axis=0).max())
    budget = float(true_costs[:, top].sum())
    points = [OperatingPoint(float(lam), float(theta), 100.0 * float(cost) / budget if budget > 0 else 0.0,
                             100.0 * float(ar) / best_ar if best_ar > 0 else 0.0)
              for theta, lam, (cost, ar, _) in zip(margins, lambdas, routed)]
    return thin(points), best_ar


def thin(points: list[OperatingPoint]) -> list[OperatingPoint]:
    """Consecutive points that route alike (same cost and AR) kept once, the first: the table
    stays a few hundred points."""
    out: list[OperatingPoint] = []
    for p in points:
        if not out or (round(p.cost_pct, 6), round(p.quality_pct, 6)) != (round(out[-1].cost_pct, 6),
                                                                           round(out[-1].quality_pct, 6)):
            out.append(p)
    return out


def calibration_table(prep: Prepared, router, setting: dict, folds: list[np.ndarray]) -> Calibration:
    """The chosen `setting`'s calibration on the selection rows (train out-of-fold and valid)."""
    suite = prep.suite
    full, folded = selection.fits(router, prep, folds)
    prediction = selection.out_of_fold(full, folded, setting, len(suite.queries))
    _, predicted, estimated, anchor = selection.candidate(prep, setting, prediction)
    rows = selection.selection_rows(prep, folds)
    top = int(np.argmax(list_prices(suite)))
    points, best_ar = table(prep.accept[rows], suite.costs[rows], predicted[rows], estimated[rows],
                            setting.get("cost_scale_usd", 0.0), anchor, top, router.knob_path)
    chosen = recommend(points, best_ar)
    rule = (f"the cheapest point whose accept rate is within {100 * RECOMMENDED_AR_SLACK:g} point of the best "
            f"single model's ({100 * best_ar:.1f}%), on {len(rows)} selection rows (train out-of-fold + valid) of "
            f"suite {suite.name}; cost as % of always {suite.model_names[top]}")
    return Calibration(tuple(points), chosen, rule)
