"""The bench's figures: latency summaries, ratios, and the router's own Route phase timings."""
from __future__ import annotations

import numpy as np


def latency_summary(seconds: list[float]) -> dict:
    """p50/p90/p99/mean in milliseconds, and the sample count."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": len(ms), "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3),
            "p99_ms": round(float(p99), 3), "mean_ms": round(float(ms.mean()), 3)}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def mean_of(dicts: list) -> dict | None:
    """Key by key mean of the non-empty dicts (the keys of the first one), or None."""
    dicts = [d for d in dicts if d]
    if not dicts:
        return None
    return {k: round(float(np.mean([d[k] for d in dicts if k in d])), 3) for k in dicts[0]}


def route_phase_totals(url: str | None) -> dict[str, tuple[float, float]] | None:
    """The router's Route phase histograms (tag, score, decide): phase -> (seconds summed, count)."""
    if not url:
        return None
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "tagrouter_route_phase_latency_seconds":
            for sample in family.samples:
                phase = sample.labels.get("phase")
                if sample.name.endswith("_sum"):
                    totals.setdefault(phase, [0.0, 0.0])[0] = sample.value
                elif sample.name.endswith("_count"):
                    totals.setdefault(phase, [0.0, 0.0])[1] = sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def phase_means_ms(before, after) -> dict | None:
    """Mean milliseconds of each Route phase between two scrapes, as the router saw them."""
    if not before or not after:
        return None
    out = {}
    for phase, (total, count) in after.items():
        t0, c0 = before.get(phase, (0.0, 0.0))
        if count > c0:
            out[f"{phase}_mean_ms"] = round((total - t0) / (count - c0) * 1000, 3)
    return out
