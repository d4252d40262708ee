"""`tagrouter eval`: fit every router on `train`, choose its settings on the selection rows, report on `test`.

Every router (`routers.default_routers()`: TagRouter and the baselines) implements one interface:
fitted on rows, it predicts a score and an expected answer length per (query, model). The same
decision rule (`tagrouter.core.decision`) turns scores and estimated costs into a choice, the same
knob sweep (`sweep`) traces its curve and the same selection (`selection`) picks its settings.
TagRouter's scores come from the scorer's own pure functions (`tagrouter.core.scoring`), so the
numbers here are what the services compute. The report is `report`, the figure `plots`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tagrouter.offline import headroom, paired, predictions, report
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.prepare import Prepared, list_prices, prepare, progress, singles_on
from tagrouter.offline.routers import Router, default_routers
from tagrouter.offline.selection import CV_FOLDS, RouterResult, cv_folds, selection_rows

__all__ = ["CV_FOLDS", "evaluate", "must_show", "prepare", "run"]


def evaluate(prep: Prepared, show_progress: bool = True, routers: list[Router] | None = None,
             folds: int = CV_FOLDS, export: Path | None = None) -> dict:
    """The RESULT.json document for one prepared suite, with every router of `routers`
    (default: the registry's); with `export`, every router's test predictions written there too."""
    suite = prep.suite
    if len(suite.rows("valid")) == 0 or len(suite.rows("test")) == 0:
        raise ValueError(f"{suite.path}: splits 'valid' and 'test' must not be empty")
    results, parts = select_all(prep, show_progress, routers, folds)
    if export is not None:
        predictions.write_predictions(prep, results, export)
    return document(prep, results, parts, folds)


def select_all(prep: Prepared, show_progress: bool = True, routers: list[Router] | None = None,
               folds: int = CV_FOLDS) -> tuple[list[RouterResult], list[np.ndarray]]:
    """Every router of `routers` (default: the registry's) chosen on the selection rows, and the folds."""
    routers = default_routers() if routers is None else routers
    parts = cv_folds(prep, folds)
    results: list[RouterResult] = []
    bar = progress(len(routers), "fitting routers", show_progress)
    for router in routers:
        results.append(router.select(prep, parts))
        bar.update()
    bar.close()
    return results, parts


def document(prep: Prepared, results: list[RouterResult], parts: list[np.ndarray], folds: int) -> dict:
    """RESULT.json from the routers' results: their test curves against the single models, the
    oracle, random mixing and the headroom of the selection rows."""
    suite = prep.suite
    train, test = suite.rows("train"), suite.rows("test")
    test_singles = singles_on(prep, test)
    doc = {
        "suite": suite.name,
        "queries": {s: int(len(suite.rows(s))) for s in ("train", "valid", "test")},
        "tie_margin": suite.tie_margin,
        "vocabulary_version": prep.vocabulary_version,
        "routers": {},
        "single_models": {
            n: {"ar": float(test_singles.ar[i]), "quality": float(test_singles.quality[i]),
                "cost_usd": float(test_singles.cost[i])} for i, n in enumerate(test_singles.names)},
        "best_single_model": test_singles.names[test_singles.best],
        "oracle": metrics.oracle(prep.accept[test], suite.scores[test], suite.costs[test]),
        # how far the embeddings predict where a no-pricier model rescues the best one (selection rows)
        "headroom": headroom.measure(prep.embeddings, prep.accept, list_prices(suite), suite.model_names,
                                     singles_on(prep, train).best, selection_rows(prep, parts), train, parts),
    }
    for r in results:
        doc["routers"][r.name] = report.router_doc(r.test_points, test_singles) | {
            "setting": r.setting, "selection_auc": r.selection_auc, "settings_tried": r.candidates, **r.extra,
            "anchor": None if r.anchor is None else suite.model_names[r.anchor],
            "selected_on": f"train out-of-fold ({folds} folds) + valid" if parts else "valid"}
    # random mixing of single models: their concave hull
    hull = metrics.concave_hull(np.stack([test_singles.cost, test_singles.ar], axis=1))
    hull_points = np.concatenate([hull, np.full((len(hull), 1), np.nan)], axis=1)
    doc["routers"]["random"] = report.router_doc(hull_points, test_singles) | {
        "setting": {}, "selection_auc": None, "settings_tried": 0}
    o = doc["oracle"]  # its AUC: the ceiling of the headroom table (one point, with the single models' ends)
    o["auc"] = report.router_doc(np.array([[o["cost_usd"], o["ar"], o["quality"]]]), test_singles)["auc"]
    if len(suite.models) == 2:
        report.two_model_figures(doc, test_singles)
    routings = {r.name: r.test.choices for r in results if r.test is not None}
    if paired.SUBJECT in routings:  # TagRouter against every other router, on the same resamples
        doc["paired_bootstrap"] = paired.compare(doc, routings | {paired.RANDOM: None}, prep.accept[test],
                                                 suite.costs[test])
    return doc


def must_show(doc: dict) -> dict:
    """The acceptance checks on one result document: by the paired interval (issue 15), and the
    point estimates of the earlier rounds."""
    routers = doc["routers"]
    tag = routers["tagrouter"]
    best = doc["single_models"][doc["best_single_model"]]
    calls = {n: c["call"] for n, c in doc.get("paired_bootstrap", {}).get("against", {}).items()}
    baselines = [n for n in calls if n != paired.RANDOM]
    return {
        "not_behind_random_or_any_baseline": bool(calls) and all(c != "behind" for c in calls.values()),
        "ahead_of_every_baseline": bool(baselines) and all(calls[n] == "ahead" for n in baselines),
        "auc_at_least_every_baseline": all(tag["auc"] >= r["auc"] - 1e-12 for n, r in routers.items() if n != "tagrouter"),
        "beats_best_single_model_at_no_more_cost": tag["best_ar"] > best["ar"] and tag["best_ar_cost_pct"] <= 100.0,
    }


def run(suite, tagger, out: Path, plot: Path | None = None, show_progress: bool = True,
        started: float | None = None, export: Path | None = None) -> dict:
    """Evaluate one loaded suite and write its RESULT.json (and figure, and with `export` the
    predictions file): the document, with the acceptance checks and the timings."""
    started = time.perf_counter() if started is None else started
    prep = prepare(suite, tagger, show_progress=show_progress)
    doc = evaluate(prep, show_progress=show_progress, export=export)
    doc["must_show"] = must_show(doc)
    doc["seconds"] = {"embedding": round(prep.seconds_embedding, 2), "total": round(time.perf_counter() - started, 2)}
    doc = report.clean_nans(doc)
    report.write_result(doc, out)
    if plot:
        from tagrouter.offline.plots import plot as draw

        draw(doc, plot)
    return doc
