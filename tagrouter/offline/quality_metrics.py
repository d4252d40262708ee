"""Routing-quality metrics as pure functions over arrays (shared/docs/ROUTING.md, section 3).

A router is judged by the points (total cost, accept rate) it reaches as its knob sweeps.
Cost is normalised to [0, 1] between the cheapest and the most expensive single model's total
cost on the same queries; AUC is the area under the upper (Pareto) frontier of the points plus
the two single-model end points, trapezoid rule between frontier points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accepted(scores: np.ndarray, tie_margin: float) -> np.ndarray:
    """[Q, M] bool: model m's answer is within tie_margin of the best other model's on query q."""
    m = scores.shape[1]
    if m < 2:
        raise ValueError("a pool needs at least two models")
    others = np.where(np.eye(m, dtype=bool)[None], -np.inf, scores[:, None, :])  # [Q, M, M']
    return scores >= others.max(axis=2) - tie_margin - 1e-12


def routed_points(choices: np.ndarray, accept: np.ndarray, quality: np.ndarray,
                  costs: np.ndarray) -> np.ndarray:
    """[K, 3] (total cost, AR, mean quality) of K routings; choices [K, Q] model indices."""
    rows = np.arange(choices.shape[1])[None, :]
    return np.stack([costs[rows, choices].sum(axis=1), accept[rows, choices].mean(axis=1),
                     quality[rows, choices].mean(axis=1)], axis=1)


def pareto_frontier(points: np.ndarray) -> np.ndarray:
    """[P, 2] the (cost, AR) points that no cheaper-or-equal point matches in AR, by cost."""
    order = np.lexsort((-points[:, 1], points[:, 0]))
    frontier, best = [], -np.inf
    for cost, ar in points[order, :2]:
        if ar > best + 1e-12:
            frontier.append((cost, ar))
            best = ar
    return np.array(frontier).reshape(-1, 2)


def frontier_area(points: np.ndarray, lo: float, hi: float, floor: float = 0.0) -> float:
    """Area under the Pareto frontier of (cost, AR) points and above `floor`, over costs [lo, hi],
    normalised to a [0, 1] cost axis. The frontier is flat before its first point is reached
    only from the cheapest single model on, which the caller includes."""
    if hi <= lo:
        raise ValueError("the most expensive single model must cost more than the cheapest")
    front = pareto_frontier(points)
    x = np.clip((front[:, 0] - lo) / (hi - lo), 0.0, None)
    y = front[:, 1]
    # beyond the last frontier point AR stays at its best; cut at x = 1 by interpolation
    xs, ys = [], []
    for i in range(len(x)):
        if x[i] >= 1.0:
            if i == 0:
                xs.append(1.0)
                ys.append(y[i])
            else:
                t = (1.0 - x[i - 1]) / (x[i] - x[i - 1]) if x[i] > x[i - 1] else 1.0
                xs.append(1.0)
                ys.append(y[i - 1] + t * (y[i] - y[i - 1]))
            break
        if xs and x[i] == xs[-1]:
            ys[-1] = max(ys[-1], y[i])
        else:
            xs.append(x[i])
            ys.append(y[i])
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(ys[-1])
    xs_a, ys_a = np.array(xs), np.maximum(np.array(ys) - floor, 0.0)
    return float(np.sum((xs_a[1:] - xs_a[:-1]) * (ys_a[1:] + ys_a[:-1]) / 2))


def concave_hull(points: np.ndarray) -> np.ndarray:
    """[P, 2] upper concave hull of (cost, AR) points from the cheapest to the best: what random
    mixing of the points reaches (any two routings mixed give the segment between them)."""
    front = pareto_frontier(points)
    hull: list[tuple[float, float]] = []
    for p in map(tuple, front):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) <= (p[1] - y1) * (x2 - x1):
                hull.pop()  # the middle point lies on or below the chord
            else:
                break
        hull.append(p)
    return np.array(hull).reshape(-1, 2)


@dataclass(frozen=True)
class SingleModels:
    """Totals of each single model on a set of queries."""

    names: list[str]
    ar: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    @property
    def cheapest(self) -> int:
        return int(np.lexsort((-self.ar, self.cost))[0])

    @property
    def priciest(self) -> int:
        return int(np.lexsort((-self.ar, -self.cost))[0])

    @property
    def best(self) -> int:
        """Highest AR; the cheaper of equals."""
        return int(np.lexsort((self.cost, -self.ar))[0])

    def end_points(self) -> np.ndarray:
        return np.array([[self.cost[self.cheapest], self.ar[self.cheapest]],
                         [self.cost[self.priciest], self.ar[self.priciest]]])


def single_models(names: list[str], accept: np.ndarray, quality: np.ndarray, costs: np.ndarray) -> SingleModels:
    return SingleModels(list(names), accept.mean(axis=0), quality.mean(axis=0), costs.sum(axis=0))


def curve_summary(points: np.ndarray, singles: SingleModels) -> dict:
    """AUC, PAUC, best AR and the cost figures for one router's (cost, AR) points."""
    lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]
    with_ends = np.concatenate([points[:, :2], singles.end_points()])
    best = singles.best
    best_ar, best_cost = float(singles.ar[best]), float(singles.cost[best])
    auc = frontier_area(with_ends, lo, hi)
    pauc = frontier_area(with_ends, lo, hi, floor=best_ar)
    # best AR at no more than the best single model's cost (the paper's "+AR at -cost")
    affordable = points[points[:, 0] <= best_cost * (1 + 1e-9)]
    if len(affordable):
        i = int(np.lexsort((affordable[:, 0], -affordable[:, 1]))[0])
        top_ar, top_cost = float(affordable[i, 1]), float(affordable[i, 0])
    else:
        top_ar, top_cost = float("nan"), float("nan")
    matching = points[points[:, 1] >= best_ar - 1e-12]
    match = float(matching[:, 0].min()) if len(matching) else None
    return {
        "auc": auc,
        "pauc": pauc,
        "best_ar": top_ar,
        "best_ar_cost_pct": 100.0 * top_cost / best_cost if best_cost > 0 else None,
        "uplift_pct": 100.0 * (top_ar / best_ar - 1.0) if best_ar > 0 else None,
        "cost_to_match_pct": (100.0 * match / best_cost if best_cost > 0 else None) if match is not None else None,
    }


def oracle(accept: np.ndarray, quality: np.ndarray, costs: np.ndarray) -> dict:
    """The cheapest accepted model on every query: an upper bound, not a baseline."""
    masked = np.where(accept, costs, np.inf)
    choice = masked.argmin(axis=1)
    rows = np.arange(len(choice))
    return {"ar": float(accept[rows, choice].mean()), "quality": float(quality[rows, choice].mean()),
            "cost_usd": float(costs[rows, choice].sum())}


def two_model_gap_recovery(points_share: np.ndarray, ar_weak: float, ar_strong: float) -> dict:
    """RouteLLM's APGR and CPT(50%), CPT(80%) from (share of calls to the strong model, AR) points."""
    gap = ar_strong - ar_weak
    if gap <= 0:
        return {"apgr": None, "cpt50": None, "cpt80": None}
    pts = np.concatenate([points_share, [[0.0, ar_weak], [1.0, ar_strong]]])
    apgr = (frontier_area(pts, 0.0, 1.0) - ar_weak) / gap
    pgr = (pts[:, 1] - ar_weak) / gap
    out = {"apgr": float(apgr)}
    for name, level in (("cpt50", 0.5), ("cpt80", 0.8)):
        ok = pts[pgr >= level - 1e-12, 0]
        out[name] = float(100.0 * ok.min()) if len(ok) else None
    return out
