"""`tagrouter calibrate`: the cost knob that meets a budget, for served weights on a suite's split.

The weights are scored offline with the evaluation's one batched pipeline
(`routers.tag_router.score_tagged`) and priced with `decision.estimate_costs`: what the scorer
and the router compute for the same tagged queries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tagrouter.core import decision, scoring
from tagrouter.core.scoring import ALL_QUERIES_TAG
from tagrouter.core.weights import counts_matrix
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.routers.tag_router import score_tagged
from tagrouter.offline.suite import Suite
from tagrouter.offline.sweep import LAMBDAS

BISECTIONS = 40


def score_with_weights(weights, tagged, prices_in: np.ndarray, prices_out: np.ndarray,
                       input_tokens: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([Q, M] scores, [Q, M] estimated costs) of weights for tagged queries, as the scorer and router
    compute them (same pure functions). The input is priced at `input_tokens` ([Q, M]) when given, else
    at the tagger's token count of the query, as the router counts what it receives."""
    names = weights.model_names
    tags = [t for t in weights.counts if t != ALL_QUERIES_TAG]
    column = {t: i for i, t in enumerate(tags)}
    counts = counts_matrix([weights.counts[t] for t in tags], names)
    all_counts = counts_matrix([weights.counts[ALL_QUERIES_TAG]], names)[0]
    conf = np.zeros((len(tagged), len(tags)))
    for q, t in enumerate(tagged):
        for name, _, score in t.tags:
            if name in column:
                conf[q, column[name]] = max(score, 0.0)
    scores, expected, _ = score_tagged(counts, all_counts, conf, tags, weights.params)
    tokens = (np.array([t.input_tokens for t in tagged], dtype=np.float64)[:, None] if input_tokens is None
              else np.asarray(input_tokens, dtype=np.float64))
    return scores, decision.estimate_costs(tokens, expected, prices_in, prices_out)


@dataclass
class SplitRouting:
    """A split of a suite scored with served weights: what routing it at any knob needs."""

    rows: np.ndarray
    predicted: np.ndarray  # [Q, M] scores of the weights' models
    estimated: np.ndarray  # [Q, M] estimated costs
    true_costs: np.ndarray  # [Q, M]
    accept: np.ndarray  # [Q, M]
    top: int  # the priciest model (list price)
    anchor: int  # the quality margin's anchor (overall rate; ties to the priciest)
    cost_scale_usd: float

    def at(self, cost_weight: float, quality_margin: float = 0.0) -> dict:
        """Cost as % of always the priciest model, its share of queries, the AR and the AR as % of the
        best single model's, when routing the split at this knob."""
        choice = decision.choose(self.predicted, self.estimated, cost_weight, self.cost_scale_usd, quality_margin,
                                 self.anchor)
        picked = np.arange(len(self.rows)), choice
        budget = self.true_costs[:, self.top].sum()
        ar, best = float(self.accept[picked].mean()), float(self.accept.mean(axis=0).max())
        return {"cost_weight": cost_weight, "quality_margin": quality_margin,
                "cost_pct": float(100 * self.true_costs[picked].sum() / budget) if budget > 0 else 0.0,
                "top_share": float(np.mean(choice == self.top)), "ar": ar,
                "quality_pct": 100 * ar / best if best > 0 else 0.0, "models_used": int(len(np.unique(choice)))}


def split_routing(suite: Suite, weights, tagger, split: str, as_sent: bool = False) -> SplitRouting:
    """`split` routed offline with `weights`. Each query's input is priced at the tagger's count of its
    text, as the router prices a Route that carries the query alone (`tagrouter simulate`), or with
    as_sent at the suite's recorded input tokens, which count the prompt as sent: as `tagrouter fit`
    priced the calibration's rows, and as the router prices a request that says its whole length
    (RouteRequest.prompt_chars, set by the front door and the Envoy processor). They differ where a
    suite's query is shorter than its prompt (RouterBench's drops its task's ~320-token prefix)."""
    missing = [m for m in weights.model_names if m not in suite.model_names]
    if missing:
        raise ValueError(f"{suite.path}: the suite has no rows for model {missing[0]!r} of the weights")
    rows = suite.rows(split)
    if len(rows) == 0:
        raise ValueError(f"{suite.path}: split {split!r} is empty")
    columns = [suite.model_names.index(m) for m in weights.model_names]
    tagged = tagger.tag_many([suite.queries[r] for r in rows])
    prices_in = np.array([m.input_usd_per_mtok for m in weights.models])
    prices_out = np.array([m.output_usd_per_mtok for m in weights.models])
    predicted, est = score_with_weights(weights, tagged, prices_in, prices_out,
                                        suite.input_tokens[np.ix_(rows, columns)] if as_sent else None)
    overall = scoring.prior_rates(counts_matrix([weights.counts[ALL_QUERIES_TAG]], weights.model_names)[0],
                                  weights.params)
    return SplitRouting(rows, predicted, est, suite.costs[np.ix_(rows, columns)],
                        metrics.accepted(suite.scores[np.ix_(rows, columns)], suite.tie_margin),
                        int(np.argmax(prices_in + prices_out)), decision.anchor(overall, prices_in + prices_out),
                        weights.params.cost_scale_usd)


def calibrate(suite: Suite, weights, tagger, split: str = "valid", target_cost_pct: float | None = None,
              target_top_share: float | None = None, as_sent: bool = True) -> dict:
    """The smallest knob on LAMBDAS whose routing of `split` meets the target (cost budget as a
    percentage of always sending the most expensive model, or share of queries sent to it); the
    queries priced as `split_routing` says (as_sent: as the front door prices them, like `fit`)."""
    routing = split_routing(suite, weights, tagger, split, as_sent=as_sent)

    def at(lam: float) -> dict:
        point = routing.at(lam)
        met = (target_cost_pct is None or point["cost_pct"] <= target_cost_pct + 1e-9) and \
              (target_top_share is None or point["top_share"] <= target_top_share + 1e-9)
        return point | {"met": bool(met)}

    found = smallest_met(at)
    return found | {"top_model": weights.model_names[routing.top], "split": split, "queries": int(len(routing.rows)),
                    "target_cost_pct": target_cost_pct, "target_top_share": target_top_share}


def served_points(suite: Suite, weights, tagger, split: str, max_cost_pcts=(), min_quality_pcts=()) -> dict:
    """What the weights' calibration (`tagrouter fit`, on its selection rows) gives on `split`: the
    recommended point and each requested max_cost_pct / min_quality_pct, translated as the router
    translates them, then routed offline with the served weights."""
    if weights.calibration is None:
        raise ValueError("the weights carry no calibration table: fit them with `tagrouter fit` (without --no-tune; "
                         "`fit --add` leaves the old pool's table out)")
    routing = split_routing(suite, weights, tagger, split, as_sent=True)
    asks = [("recommended", None, {})] + [("max_cost_pct", p, {"max_cost_pct": p}) for p in max_cost_pcts] + \
           [("min_quality_pct", q, {"min_quality_pct": q}) for q in min_quality_pcts]
    out = []
    for knob, target, kwargs in asks:
        point = weights.calibration.point_for(**kwargs)
        out.append({"knob": knob, "target": target, "selection_cost_pct": point.cost_pct,
                    "selection_quality_pct": point.quality_pct, **routing.at(point.cost_weight, point.quality_margin)})
    return {"suite": suite.name, "split": split, "queries": int(len(routing.rows)),
            "top_model": weights.model_names[routing.top], "weights_version": weights.version, "points": out}


def smallest_met(at) -> dict:
    """The point of `at(lambda)` with the smallest lambda that meets the target: the coarse sweep on
    LAMBDAS brackets it, bisection finds it (the cheapest setting's point when none meets it)."""
    previous, found = 0.0, None
    for lam in LAMBDAS:
        found = at(float(lam))
        if found["met"]:
            break
        previous = float(lam)
    if found["met"] and found["cost_weight"] > previous:
        lo, hi = previous, found["cost_weight"]
        for _ in range(BISECTIONS):
            mid = (lo + hi) / 2
            point = at(mid)
            if point["met"]:
                hi, found = mid, point
            else:
                lo = mid
    return found
