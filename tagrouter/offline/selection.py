"""Choosing a router's settings: by AUC on the selection rows only, never on test.

The selection rows are valid plus train predicted out-of-fold: valid alone (81 queries on the
AlpacaEval suites) picks noise among hundreds of settings. Every router gets the same folds and
the same rules: the best AUC (the simpler, earlier setting on ties), then the one-standard-error
rule toward the simplest setting the selection rows cannot tell from the best (except TagRouter's
tag set, whose rule is off where served: `TagRouter.parsimony`, docs/DESIGN-ROWS.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tagrouter.core import decision
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline import sweep as knob
from tagrouter.offline.prepare import Prepared, cost_scales, estimated_costs, list_prices, singles_on

if TYPE_CHECKING:
    from tagrouter.offline.routers.base import Fitted, Prediction, Router

CV_FOLDS = 5


@dataclass
class TestRouting:
    """The chosen setting on test: what the router predicted and chose there, kept so that the
    paired bootstrap (`paired`) and `--export-predictions` use exactly the routings reported."""

    scores: np.ndarray  # [T, M] predicted scores of the test queries
    estimated_costs: np.ndarray  # [T, M]
    choices: np.ndarray  # [K, T] model index per test query at each knob point, in the curve's order


@dataclass
class RouterResult:
    name: str
    setting: dict
    selection_auc: float
    test_points: np.ndarray
    candidates: int = 0
    extra: dict = field(default_factory=dict)
    anchor: int | None = None  # the quality margin's anchor model (index), from train
    test: TestRouting | None = None


def cv_folds(prep: Prepared, folds: int = CV_FOLDS) -> list[np.ndarray]:
    """Train rows split into `folds` fixed random parts (no folds: selection on valid alone)."""
    if folds < 2:
        return []
    train = prep.suite.rows("train")
    return np.array_split(np.random.default_rng(0).permutation(train), folds)


def selection_rows(prep: Prepared, folds: list[np.ndarray]) -> np.ndarray:
    """Rows whose routing picks the settings: valid, plus train when predictions there are out-of-fold."""
    valid = prep.suite.rows("valid")
    return np.concatenate([prep.suite.rows("train"), valid]) if folds else valid


def sweep(prep: Prepared, rows: np.ndarray, predicted: np.ndarray, estimated: np.ndarray, cost_scale_usd: float = 0.0,
          anchor: int | None = None, path: knob.KnobPath = knob.knob_path) -> np.ndarray:
    """[K, 3] (true total cost, AR, quality) of the decision rule along `path` on the suite's `rows`."""
    suite = prep.suite
    return knob.routed(prep.accept[rows], suite.scores[rows], suite.costs[rows], predicted[rows], estimated[rows],
                       cost_scale_usd, anchor, path)


# --- predictions on the selection rows -------------------------------------------------------
def fits(router: Router, prep: Prepared, folds: list[np.ndarray]) -> tuple[Fitted, list[tuple[np.ndarray, Fitted]]]:
    """The router fitted on the whole train split, and on it without each fold."""
    train = prep.suite.rows("train")
    return router.fit(prep, train), [(part, router.fit(prep, np.setdiff1d(train, part))) for part in folds]


def out_of_fold(full: Fitted, folded: list[tuple[np.ndarray, Fitted]], setting: dict, n_queries: int) -> Prediction:
    """Every query's prediction under `setting`: from the whole train fit, and on each fold's rows
    from the fit without that fold (the overall rates stay the whole train fit's)."""
    whole = full.predict(setting, np.arange(n_queries))
    for part, fitted in folded:
        held = fitted.predict(setting, part)
        whole.scores[part], whole.output_tokens[part] = held.scores, held.output_tokens
    return whole


def candidate(prep: Prepared, setting: dict, prediction: Prediction) -> tuple:
    """(setting, [Q, M] scores, [Q, M] estimated costs, anchor index) of one prediction."""
    suite = prep.suite
    overall = prediction.overall
    if overall is None:  # the mean predicted score on train (out-of-fold where there are folds)
        overall = prediction.scores[suite.rows("train")].mean(axis=0)
    return (setting, prediction.scores, estimated_costs(suite, prediction.output_tokens),
            decision.anchor(overall, list_prices(suite)))


def candidates(router: Router, prep: Prepared, folds: list[np.ndarray], settings):
    """`candidate` for every setting, fitted once per fold."""
    full, folded = fits(router, prep, folds)
    for setting in settings:
        yield candidate(prep, setting, out_of_fold(full, folded, setting, len(prep.suite.queries)))


# --- the choice ------------------------------------------------------------------------------
def choose(prep: Prepared, router: Router, cands, rows: np.ndarray, keep: list | None = None) -> RouterResult:
    """Keeps the setting with the best AUC on `rows` (the simpler, earlier one on ties), each setting
    tried under every cost scale of `cost_scales`.

    cands: (setting, [Q, M] predicted scores, [Q, M] estimated costs, anchor model index).
    keep: when a list, every (setting with its cost scale, AUC, scores, costs, anchor) tried is appended."""
    suite = prep.suite
    singles = singles_on(prep, rows)
    lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
    best, tried, tried_settings = None, 0, []
    for setting, predicted, est, anchor in cands:
        for scale in cost_scales(suite, est):
            tried += 1
            pts = sweep(prep, rows, predicted, est, scale, anchor, router.knob_path)
            auc = metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)
            tried_settings.append(({**setting, "cost_rule": "absolute" if scale > 0 else "relative"}, auc))
            if keep is not None:
                keep.append(({**setting, "cost_scale_usd": scale}, auc, predicted, est, anchor))
            if best is None or auc > best[1] + 1e-9:
                best = ({**setting, "cost_scale_usd": scale}, auc, predicted, est, anchor)
    setting, auc, predicted, est, anchor = best
    points, routing = on_test(prep, router, predicted, est, setting, anchor)
    return RouterResult(router.name, setting, auc, points, tried, {"alternatives": alternatives(tried_settings)},
                        anchor, routing)


def on_test(prep: Prepared, router: Router, predicted: np.ndarray, est: np.ndarray, setting: dict,
            anchor: int | None) -> tuple[np.ndarray, TestRouting]:
    """The chosen setting's curve on test and the routing behind it (reported, never used to choose)."""
    suite, test = prep.suite, prep.suite.rows("test")
    choices = knob.choices_on_path(predicted[test], est[test], setting["cost_scale_usd"], anchor, router.knob_path)
    points = metrics.routed_points(choices, prep.accept[test], suite.scores[test], suite.costs[test])
    return points, TestRouting(predicted[test].copy(), est[test].copy(), choices)


def alternatives(tried: list[tuple[dict, float]]) -> dict:
    """For each knob and each value tried: the best selection AUC among settings with that value.

    This is the measurement behind each choice: how much a value loses against the best."""
    out: dict[str, dict[str, float]] = {}
    for setting, auc in tried:
        for key, value in setting.items():
            label = ",".join(map(str, value)) or "none" if isinstance(value, (list, tuple)) else str(value)
            out.setdefault(key, {})
            out[key][label] = max(out[key].get(label, -1.0), round(float(auc), 5))
    return {k: v for k, v in out.items() if len(v) > 1}


def grid_search(router: Router, prep: Prepared, folds: list[np.ndarray], settings) -> RouterResult:
    """The best of `settings` on the selection rows, simplified by the one-standard-error rule."""
    tried: list = []
    result = choose(prep, router, candidates(router, prep, folds, settings), selection_rows(prep, folds), keep=tried)
    return one_se_rule(prep, router, result, tried, folds, router.complexity) if folds else result


# --- the one-standard-error rule -------------------------------------------------------------
def group_aucs(prep: Prepared, router: Router, groups: list[np.ndarray], predicted: np.ndarray, est: np.ndarray,
               scale: float, anchor: int | None) -> np.ndarray:
    """[G] the AUC of one setting on each group of selection rows (each train fold, and valid)."""
    out = []
    for rows in groups:
        singles = singles_on(prep, rows)
        lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
        pts = sweep(prep, rows, predicted, est, scale, anchor, router.knob_path)
        out.append(metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)
                   if hi > lo else np.nan)
    return np.array(out)


def one_se_rule(prep: Prepared, router: Router, best: RouterResult, tried: list, parts: list[np.ndarray],
                size) -> RouterResult:
    """The one-standard-error rule, the same for every router: among the settings `tried` (as kept
    by `choose`), the smallest by `size` (a sort key: smaller is simpler) whose selection AUC is within
    one standard error of the best's, the standard error being that of the paired difference from its
    spread over the selection groups (each train fold, and valid). Returns `best` when no simpler
    setting qualifies."""
    groups = [*parts, prep.suite.rows("valid")]
    ranked = sorted(tried, key=lambda t: -t[1])
    top_setting, top_auc, top_p, top_c, top_a = ranked[0]
    if best.selection_auc > top_auc + 1e-9:  # the best was not among `tried`: nothing to simplify
        return best
    top_groups = group_aucs(prep, router, groups, top_p, top_c, top_setting["cost_scale_usd"], top_a)
    chosen = None
    for cand in sorted(tried, key=lambda t: (size(t[0]), -t[1])):
        setting, auc, p, c, a = cand
        if size(setting) >= size(top_setting):
            break
        diff = top_groups - group_aucs(prep, router, groups, p, c, setting["cost_scale_usd"], a)
        diff = diff[np.isfinite(diff)]
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if top_auc - auc <= se + 1e-12:
            chosen = cand
            break
    if chosen is None:
        return best
    setting, auc, p, c, a = chosen
    extra = dict(best.extra, one_se_rule={"best_setting": top_setting, "best_selection_auc": top_auc})
    points, routing = on_test(prep, router, p, c, setting, a)
    return RouterResult(best.name, setting, auc, points, best.candidates, extra, a, routing)
