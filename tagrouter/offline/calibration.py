"""`tagrouter calibrate`: the cost knob that meets a budget, for served weights on a suite's split.

The weights are scored offline with the evaluation's one batched pipeline
(`routers.tag_router.score_tagged`) and priced with `decision.estimate_costs`: what the scorer
and the router compute for the same tagged queries.
"""
from __future__ import annotations

import numpy as np

from tagrouter.core import decision
from tagrouter.core.scoring import ALL_QUERIES_TAG
from tagrouter.core.weights import counts_matrix
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.routers.tag_router import score_tagged
from tagrouter.offline.suite import Suite
from tagrouter.offline.sweep import LAMBDAS

BISECTIONS = 40


def score_with_weights(weights, tagged, prices_in: np.ndarray, prices_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([Q, M] scores, [Q, M] estimated costs) of weights for tagged queries, as the scorer and router
    compute them (same pure functions; the tagger's token count prices the input)."""
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
    tokens = np.array([t.input_tokens for t in tagged], dtype=np.float64)[:, None]
    return scores, decision.estimate_costs(tokens, expected, prices_in, prices_out)


def calibrate(suite: Suite, weights, tagger, split: str = "valid", target_cost_pct: float | None = None,
              target_top_share: float | None = None) -> dict:
    """The smallest knob on LAMBDAS whose routing of `split` meets the target (cost budget as a
    percentage of always sending the most expensive model, or share of queries sent to it)."""
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
    predicted, est = score_with_weights(weights, tagged, prices_in, prices_out)
    true_costs = suite.costs[np.ix_(rows, columns)]
    accept = metrics.accepted(suite.scores[np.ix_(rows, columns)], suite.tie_margin)
    top = int(np.argmax(prices_in + prices_out))
    budget_all = true_costs[:, top].sum()

    def at(lam: float) -> dict:
        choice = decision.choose(predicted, est, lam, weights.params.cost_scale_usd)
        cost = true_costs[np.arange(len(rows)), choice].sum()
        point = {"cost_weight": lam, "cost_pct": float(100 * cost / budget_all) if budget_all > 0 else 0.0,
                 "top_share": float(np.mean(choice == top)), "ar": float(accept[np.arange(len(rows)), choice].mean())}
        met = (target_cost_pct is None or point["cost_pct"] <= target_cost_pct + 1e-9) and \
              (target_top_share is None or point["top_share"] <= target_top_share + 1e-9)
        return point | {"met": bool(met)}

    found = smallest_met(at)
    return found | {"top_model": weights.model_names[top], "split": split, "queries": int(len(rows)),
                    "target_cost_pct": target_cost_pct, "target_top_share": target_top_share}


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
