"""Alternatives to TagRouter's rules that were measured and not kept (docs/ROUTING-CHOICES.md).

    .venv/bin/python bench/experiments/routing_alternatives.py --suites ../shared/data/suites

Each alternative is a router built through the evaluation's router interface
(`tagrouter.offline.routers`), evaluated beside the served ones; nothing here is served and
nothing is patched:
- `combination`: the query score as the paper's sum of per-tag scores, centred on the prior
  (`sum`), or that sum over sqrt(sum of squared tag weights) (`sqrt`), against the weighted mean
  (`mean`, what the scorer serves): `TagRouter(combine=...)`, which combines a query's tag rates
  and its tags' answer lengths by that rule; its whole grid chosen again under each rule.
- `negative-margin`: every router's knob path (`sweep.knob_path`) extended by a negative quality
  margin at lambda = 0, the paper's threshold on the other side: every router of the registry
  built with that path (`knob_path=...`) and chosen again.
Prints selection AUC and, for disclosure, test AUC; choices are made on the selection rows only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tagrouter.core import decision, scoring
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline import sweep
from tagrouter.offline.evaluate import evaluate
from tagrouter.offline.prepare import Prepared, configured_tagger, prepare, singles_on
from tagrouter.offline.routers import REGISTRY, TagRouter
from tagrouter.offline.selection import cv_folds
from tagrouter.offline.suite import SuiteError, load_suite


def centred_sum(rates, weights, prior):
    return prior[None, :] + weights @ (rates - prior[None, :])


def centred_sum_over_norm(rates, weights, prior):
    norm = np.sqrt((weights ** 2).sum(axis=1, keepdims=True))
    return prior[None, :] + (weights @ (rates - prior[None, :])) / np.where(norm > 0, norm, 1.0)


COMBINATIONS = {"mean": scoring.score_matrix, "sum": centred_sum, "sqrt": centred_sum_over_norm}


def negative_margin_path(scores, costs, cost_scale_usd=0.0, anchor=None, quantiles=sweep.SWITCH_QUANTILES):
    """`sweep.knob_path`, then negative quality margins at lambda = 0: values just past quantiles of the
    anchor's lead where the anchor is the lambda = 0 choice, and past the largest."""
    margins, lambdas = sweep.knob_path(scores, costs, cost_scale_usd, anchor, quantiles)
    if anchor is None or scores.shape[1] < 2:
        return margins, lambdas
    first = decision.choose(scores, costs, 0.0, cost_scale_usd)
    gap = scores[:, anchor] - np.delete(scores, anchor, axis=1).max(axis=1)  # >= 0 where the anchor is chosen
    points = gap[(first == anchor) & np.isfinite(gap)]
    if not len(points):
        return margins, lambdas
    negative = -np.unique(np.concatenate([sweep.past_quantiles(points, quantiles),
                                          [points.max() * (1 + 1e-9) + 1e-12]]))
    return np.concatenate([margins, negative]), np.concatenate([lambdas, np.zeros_like(negative)])


def test_auc(prep: Prepared, points: np.ndarray) -> float:
    singles = singles_on(prep, prep.suite.rows("test"))
    return metrics.curve_summary(points, singles)["auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True)
    parser.add_argument("--only", choices=("combination", "negative-margin"))
    args = parser.parse_args()
    tagger = configured_tagger()
    for folder in sorted(p for p in args.suites.iterdir() if (p / "suite.json").is_file()):
        try:
            suite = load_suite(folder)
        except SuiteError as err:  # what is wrong with a malformed suite
            raise SystemExit(f"error: {err}") from err
        prep = prepare(suite, tagger, show_progress=False)
        if args.only in (None, "combination"):
            for name, rule in COMBINATIONS.items():
                result = TagRouter(name=f"tagrouter-{name}", combine=rule).select(prep, cv_folds(prep))
                print(f"{suite.name} combination={name}: selection AUC {result.selection_auc:.4f}, "
                      f"test AUC {test_auc(prep, result.test_points):.4f}", flush=True)
        if args.only in (None, "negative-margin"):
            routers = [make(knob_path=negative_margin_path) for make in REGISTRY.values()]
            doc = evaluate(prep, show_progress=False, routers=routers)
            print(f"{suite.name} negative-margin: " + "; ".join(
                f"{n} selection {r['selection_auc']:.4f} test {r['auc']:.4f} best AR {r['best_ar']:.4f}"
                for n, r in doc["routers"].items() if r.get("selection_auc") is not None), flush=True)


if __name__ == "__main__":
    main()
