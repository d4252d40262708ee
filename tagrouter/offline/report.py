"""The evaluation's report: each router's summary of its test curve, RESULT.json and the Markdown table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tagrouter.offline import quality_metrics as metrics


def router_doc(points: np.ndarray, singles: metrics.SingleModels) -> dict:
    """A router's curve summary (ROUTING.md, section 3) and its distinct (cost, AR) points."""
    summary = metrics.curve_summary(points, singles)
    uniq = sorted({(round(float(c), 6), round(float(a), 6)) for c, a in points[:, :2]})
    return summary | {"curve": [list(p) for p in uniq]}


def two_model_figures(doc: dict, singles: metrics.SingleModels) -> None:
    """RouteLLM's APGR and CPT for every router of a two-model suite, added to its entry."""
    strong = singles.priciest
    weak = 1 - strong
    for r in doc["routers"].values():
        # the share of calls to the strong model is not kept per point; recover it from cost
        c_w, c_s = singles.cost[weak], singles.cost[strong]
        pts = np.array(r["curve"])
        share = np.clip((pts[:, 0] - c_w) / (c_s - c_w), 0, 1) if c_s > c_w else pts[:, 0] * 0
        r.update(metrics.two_model_gap_recovery(np.stack([share, pts[:, 1]], axis=1),
                                                float(singles.ar[weak]), float(singles.ar[strong])))


def write_result(doc: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_nan_to_none) + "\n")


def _nan_to_none(value):
    raise TypeError(f"not JSON serialisable: {value!r}")


def clean_nans(doc):
    """NaN -> None everywhere (JSON has no NaN)."""
    if isinstance(doc, dict):
        return {k: clean_nans(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [clean_nans(v) for v in doc]
    if isinstance(doc, float) and not np.isfinite(doc):
        return None
    return doc


def pct(v) -> str:
    return "never" if v is None else f"{v:.1f}%"


def format_table(doc: dict) -> str:
    """The routers and single models of one result, as a Markdown table, and the headroom in a line."""
    lines = ["| router | AUC | PAUC | best AR (≤ best model's cost) | its cost | uplift | cost to match |",
             "|---|---|---|---|---|---|---|"]
    for name, r in sorted(doc["routers"].items(), key=lambda kv: -kv[1]["auc"]):
        best_ar = "–" if r["best_ar"] is None else f"{r['best_ar']:.4f}"
        uplift = "–" if r["uplift_pct"] is None else f"{r['uplift_pct']:+.2f}%"
        lines.append(f"| {name} | {r['auc']:.4f} | {r['pauc']:.4f} | {best_ar} | {pct(r['best_ar_cost_pct'])} | "
                     f"{uplift} | {pct(r['cost_to_match_pct'])} |")
    lines += ["", "| single model | AR | quality | cost (USD) |", "|---|---|---|---|"]
    for name, m in sorted(doc["single_models"].items(), key=lambda kv: -kv[1]["cost_usd"]):
        mark = " (best)" if name == doc["best_single_model"] else ""
        lines.append(f"| {name}{mark} | {m['ar']:.4f} | {m['quality']:.4f} | {m['cost_usd']:.4f} |")
    o = doc["oracle"]
    lines.append(f"| oracle (cheapest accepted) | {o['ar']:.4f} | {o['quality']:.4f} | {o['cost_usd']:.4f} |")
    h = doc["headroom"]
    lines += ["", f"Headroom on the selection rows (tagrouter/offline/headroom.py): {h['best_model']} fails "
                  f"{h['best_model_misses']} of {h['rows']} queries, {h['rescuable']} of which another model no pricier "
                  f"gets right; the best of {h['predictors_tried']} orders predicted from the embeddings gains net "
                  f"+{h['best_gain_queries']} queries, the best of as many random orders +"
                  f"{h['random_orders_gain_queries']:.2f} on average."]
    if "paired_bootstrap" in doc:
        lines += ["", paired_line(doc["paired_bootstrap"])]
    return "\n".join(lines)


def comparison(c: dict) -> str:
    """`+0.0123 [-0.0030, +0.0290] level`: a difference, its interval and the call."""
    low, high = c["interval"]
    return f"{c['auc_difference']:+.4f} [{low:+.4f}, {high:+.4f}] {c['call']}"


def paired_line(boot: dict) -> str:
    """TagRouter against every router, in a sentence (the paired bootstrap of `paired`)."""
    return (f"TagRouter's AUC minus each router's, with the {boot['confidence']:.0%} paired bootstrap interval over "
            f"test queries ({boot['resamples']} resamples, the same for every router): "
            + "; ".join(f"{n} {comparison(c)}" for n, c in boot["against"].items()) + ".")
