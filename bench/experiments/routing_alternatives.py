"""Alternatives to TagRouter's rules that were measured and not kept (docs/ROUTING-CHOICES.md).

    .venv/bin/python bench/experiments/routing_alternatives.py --suites ../shared/data/suites

Each alternative replaces one pure function for the length of a run (nothing here is served):
- `combination`: the query score as the paper's sum of per-tag scores, centred on the prior
  (`sum`), or that sum over sqrt(sum of squared tag weights) (`sqrt`), against the weighted mean
  (`mean`, what the scorer serves); TagRouter's whole grid is chosen again under each rule.
- `negative-margin`: every router's knob path (evaluate.knob_path) extended by a negative quality
  margin at lambda = 0, the paper's threshold on the other side; every router chosen again.
Prints selection AUC and, for disclosure, test AUC; choices are made on the selection rows only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tagrouter.core import decision
from tagrouter.core import scoring
from tagrouter.offline import evaluate as ev
from tagrouter.offline import quality_metrics as metrics


def centred_sum(rates, weights, prior):
    return prior[None, :] + weights @ (rates - prior[None, :])


def centred_sum_over_norm(rates, weights, prior):
    norm = np.sqrt((weights ** 2).sum(axis=1, keepdims=True))
    return prior[None, :] + (weights @ (rates - prior[None, :])) / np.where(norm > 0, norm, 1.0)


COMBINATIONS = {"mean": scoring.score_matrix, "sum": centred_sum, "sqrt": centred_sum_over_norm}


def with_negative_margin(knob_path):
    def path(scores, costs, cost_scale_usd=0.0, anchor=None, quantiles=ev.SWITCH_QUANTILES):
        margins, lambdas = knob_path(scores, costs, cost_scale_usd, anchor, quantiles)
        if anchor is None or scores.shape[1] < 2:
            return margins, lambdas
        first = decision.choose(scores, costs, 0.0, cost_scale_usd)
        gap = scores[:, anchor] - np.delete(scores, anchor, axis=1).max(axis=1)  # >= 0 where the anchor is chosen
        points = gap[(first == anchor) & np.isfinite(gap)]
        if not len(points):
            return margins, lambdas
        negative = -np.unique(np.concatenate([ev._past_quantiles(points, quantiles),
                                              [points.max() * (1 + 1e-9) + 1e-12]]))
        return np.concatenate([margins, negative]), np.concatenate([lambdas, np.zeros_like(negative)])

    return path


def test_auc(prep: ev.Prepared, points: np.ndarray) -> float:
    singles = ev.singles_on(prep, prep.suite.rows("test"))
    return metrics.curve_summary(points, singles)["auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=Path, required=True)
    parser.add_argument("--only", choices=("combination", "negative-margin"))
    args = parser.parse_args()
    from tagrouter.cli import _eval_tagger, _load_suite_or_fail

    tagger = _eval_tagger()
    for folder in sorted(p for p in args.suites.iterdir() if (p / "suite.json").is_file()):
        suite, error = _load_suite_or_fail(folder)  # prints what is wrong with a malformed suite
        if suite is None:
            raise SystemExit(error)
        prep = ev.prepare(suite, tagger, show_progress=False)
        if args.only in (None, "combination"):
            for name, rule in COMBINATIONS.items():
                scoring.score_matrix = rule  # tagrouter_predict looks it up at call time
                try:
                    result = ev.select_tagrouter(prep).result
                finally:
                    scoring.score_matrix = COMBINATIONS["mean"]
                print(f"{suite.name} combination={name}: selection AUC {result.selection_auc:.4f}, "
                      f"test AUC {test_auc(prep, result.test_points):.4f}", flush=True)
        if args.only in (None, "negative-margin"):
            served = ev.knob_path
            ev.knob_path = with_negative_margin(served)
            try:
                doc = ev.evaluate(prep, show_progress=False)
            finally:
                ev.knob_path = served
            print(f"{suite.name} negative-margin: " + "; ".join(
                f"{n} selection {r['selection_auc']:.4f} test {r['auc']:.4f} best AR {r['best_ar']:.4f}"
                for n, r in doc["routers"].items() if r.get("selection_auc") is not None), flush=True)


if __name__ == "__main__":
    main()
