"""The decision rule and the cost estimate as pure functions over arrays: no I/O.

Rule: choose argmax_m  S(m, q) - lambda * cost(m, q) / max_m' cost(m', q)    (relative), or
             argmax_m  S(m, q) - lambda * cost(m, q) / cost_scale_usd        (absolute).

The absolute form is the Lagrangian of "best total score under a total budget": a long,
expensive query pays more for the strong model than a short one, so it needs a larger score
gain to get it. The weights carry `cost_scale_usd` (0 = relative), chosen on valid with the
other scoring parameters (docs/ROUTING-CHOICES.md); the scale is a typical query's cost on the
priciest model, so lambda keeps the same order of magnitude under both forms.

lambda (the cost knob, `cost_weight`) is in units of score: 0 picks the best expected
quality; lambda = 0.1 gives up 0.1 of score to pay nothing instead of the most expensive
model's price. Dividing by the query's most expensive candidate keeps lambda meaningful for
a 10-token and a 10,000-token query alike. For two models it is the paper's rule: route to
the weak model when S(weak) - S(strong) > -lambda * (1 - cost_weak/cost_strong).
Ties go to the cheaper model.
"""
from __future__ import annotations

import numpy as np

USD_PER_MTOK = 1e-6


def estimate_costs(input_tokens: int, expected_output_tokens: np.ndarray, input_usd_per_mtok: np.ndarray,
                   output_usd_per_mtok: np.ndarray) -> np.ndarray:
    """[M] USD: input_tokens * input price + expected output tokens * output price."""
    return (input_tokens * input_usd_per_mtok + expected_output_tokens * output_usd_per_mtok) * USD_PER_MTOK


def utilities(scores: np.ndarray, costs: np.ndarray, cost_weight: float, cost_scale_usd: float = 0.0) -> np.ndarray:
    """[..., M] utility along the last axis (works for one query or many).

    cost_scale_usd = 0: S - lambda * cost / max cost (the query's priciest candidate);
    cost_scale_usd > 0: S - lambda * cost / cost_scale_usd, one scale for every query.
    """
    if cost_scale_usd > 0:
        return scores - cost_weight * (costs / cost_scale_usd)
    top = costs.max(axis=-1, keepdims=True)
    relative = np.divide(costs, top, out=np.zeros_like(costs, dtype=np.float64), where=top > 0)
    return scores - cost_weight * relative


def choose(scores: np.ndarray, costs: np.ndarray, cost_weight: float, cost_scale_usd: float = 0.0) -> int | np.ndarray:
    """Index of the chosen model (or [Q] indices for [Q, M] inputs); ties go to the cheaper.

    cost_weight may be an array that broadcasts against the scores (e.g. [K, 1, 1] for K knob
    values at once: [K, Q] choices), which is how the evaluation sweeps the knob.
    """
    utility = utilities(scores, costs, cost_weight, cost_scale_usd)
    best = utility.max(axis=-1, keepdims=True)
    # |u - best| <= 1e-12 is np.isclose(rtol=0, atol=1e-12) without its overhead, a third
    # of Route's own time for 7 models; `==` keeps infinite utilities tied as isclose does.
    tied = (utility == best) | (np.abs(utility - best) <= 1e-12)
    return np.where(tied, costs, np.inf).argmin(axis=-1)
