"""Uncertainty in every comparison: TagRouter's AUC against each other router's, by a paired bootstrap.

A test split of 160 queries moves AUC by a few thousandths when one query changes, so a
difference is reported with its 95% interval. The test queries are resampled with replacement
(`RESAMPLES` times, one fixed seed); every router is scored on the same resample, with its knob
points and its choice at each of them fixed as reported (nothing is re-chosen on a resample), and
random mixing as the hull of the single models on that resample. A comparison is *ahead* when the
whole interval of TagRouter's AUC minus the other's is above 0, *behind* when it is below, and
*level* otherwise.
"""
from __future__ import annotations

import numpy as np

from tagrouter.offline import quality_metrics as metrics

RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
SUBJECT = "tagrouter"
RANDOM = "random"


def resample_counts(n_queries: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """[B, T] how often each test query is drawn in each resample (T draws with replacement)."""
    draws = np.random.default_rng(seed).integers(0, n_queries, size=(resamples, n_queries))
    counts = np.zeros((resamples, n_queries))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    return counts


def resampled_aucs(choices: np.ndarray | None, accept: np.ndarray, costs: np.ndarray,
                   counts: np.ndarray) -> np.ndarray:
    """[B] a routing's AUC on each resample (`counts` [B, T]); `choices` [K, T] the model per test query at
    each knob point, or None for random mixing (the concave hull of the single models)."""
    rows = np.arange(accept.shape[0])
    single_ar = (counts @ accept.astype(float)) / counts.sum(axis=1, keepdims=True)  # [B, M]
    single_cost = counts @ costs  # [B, M]
    if choices is not None:
        ar = (counts @ accept[rows, choices].astype(float).T) / counts.sum(axis=1, keepdims=True)  # [B, K]
        cost = counts @ costs[rows, choices].T  # [B, K]
    out = np.empty(len(counts))
    for b in range(len(counts)):
        singles = metrics.SingleModels([], single_ar[b], np.zeros_like(single_ar[b]), single_cost[b])
        lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
        if hi <= lo:
            out[b] = np.nan
            continue
        if choices is None:
            points = metrics.concave_hull(np.stack([single_cost[b], single_ar[b]], axis=1))
        else:
            points = np.unique(np.stack([cost[b], ar[b]], axis=1), axis=0)
        out[b] = metrics.frontier_area(np.concatenate([points, singles.end_points()]), lo, hi)
    return out


def differences(routings: dict[str, np.ndarray | None], accept: np.ndarray, costs: np.ndarray,
                counts: np.ndarray) -> dict[str, np.ndarray]:
    """[B] TagRouter's AUC minus each other routing's (name -> choices, None for random mixing), per resample."""
    aucs = {name: resampled_aucs(choices, accept, costs, counts) for name, choices in routings.items()}
    return {name: aucs[SUBJECT] - auc for name, auc in aucs.items() if name != SUBJECT}


def call(low: float, high: float) -> str:
    """ahead, behind or level from an interval of TagRouter's AUC minus the other's."""
    return "ahead" if low > 0 else "behind" if high < 0 else "level"


def summary(observed: float, diffs: np.ndarray, confidence: float = CONFIDENCE) -> dict:
    """The observed difference, its percentile interval over the resamples and the call."""
    diffs = diffs[np.isfinite(diffs)]
    tail = 100 * (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(diffs, [tail, 100 - tail]))
    return {"auc_difference": float(observed), "interval": [low, high], "call": call(low, high)}


def compare(doc: dict, routings: dict[str, np.ndarray | None], accept: np.ndarray, costs: np.ndarray,
            resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """RESULT.json's `paired_bootstrap`: TagRouter against every other router of `doc`."""
    diffs = differences(routings, accept, costs, resample_counts(len(accept), resamples, seed))
    subject = doc["routers"][SUBJECT]["auc"]
    return {"resamples": resamples, "confidence": CONFIDENCE, "seed": seed, "unit": "test queries",
            "against": {name: summary(subject - doc["routers"][name]["auc"], d) for name, d in diffs.items()}}
