"""The bench's figures: latency summaries, ratios, and the services' own phase timings (their /metrics)."""
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


# Histograms the c1 breakdown reads: (metrics family, label naming the part, only samples with these labels)
ROUTER_PHASES = ("tagrouter_route_phase_latency_seconds", "phase", {})
TAGGER_PHASES = ("tagrouter_tagger_phase_latency_seconds", "phase", {})
RPC_HANDLING = ("tagrouter_rpc_latency_seconds", "method", {"code": "OK"})
STREAM_MESSAGE = "TagStream.message"  # the method label of TagStream's messages (services/tagger/servicer.py)


def histogram_totals(url: str | None, histogram=ROUTER_PHASES) -> dict[str, tuple[float, float]] | None:
    """A histogram's totals from a /metrics page: part -> (seconds summed, count); default the
    router's Route phases (tag, score, decide)."""
    if not url:
        return None
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    family_name, label, where = histogram
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            for sample in family.samples:
                if any(sample.labels.get(k) != v for k, v in where.items()):
                    continue
                part = sample.labels.get(label)
                if sample.name.endswith("_sum"):
                    totals.setdefault(part, [0.0, 0.0])[0] += sample.value
                elif sample.name.endswith("_count"):
                    totals.setdefault(part, [0.0, 0.0])[1] += sample.value
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


def scrape_c1(router_url: str | None, tagger_url: str | None) -> tuple | None:
    """What the c1 breakdown needs from the services' /metrics, now."""
    if not router_url or not tagger_url:
        return None
    return (histogram_totals(router_url), histogram_totals(router_url, RPC_HANDLING),
            histogram_totals(tagger_url, TAGGER_PHASES), histogram_totals(tagger_url, RPC_HANDLING))


def c1_breakdown(before: tuple | None, after: tuple | None, route_seconds: list[float]) -> dict | None:
    """Where a one-at-a-time Route's time goes (mean ms), from two scrapes around the round: the
    tagger's encoder call (tokenise, onnxruntime, tag selection) and the rest of its Tag handler
    (cache, batcher hand-offs, response, interceptors); the router -> tagger hop (serialisation,
    gRPC and both event loops); the router's score and decide phases and the rest of its handler;
    and the client -> router hop (the client's mean less the router's handling)."""
    if before is None or after is None or not route_seconds:
        return None
    router, router_rpc, tagger, tagger_rpc = (phase_means_ms(b, a) or {} for b, a in zip(before, after))
    # the router tags over TagStream (a message's handling is timed as its own method) or with Tag calls
    tagger_rpc["Tag_mean_ms"] = tagger_rpc.get(f"{STREAM_MESSAGE}_mean_ms", tagger_rpc.get("Tag_mean_ms"))
    need = ("tag_mean_ms", "score_mean_ms", "decide_mean_ms", "Route_mean_ms", "tokenise_mean_ms", "encode_mean_ms",
            "select_mean_ms", "Tag_mean_ms")
    got = {k: v for k, v in {**router, **router_rpc, **tagger, **tagger_rpc}.items() if v is not None}
    if any(k not in got for k in need):
        return None
    encoder_call = got["tokenise_mean_ms"] + got["encode_mean_ms"] + got["select_mean_ms"]
    parts = {"tokenise": got["tokenise_mean_ms"], "encode": got["encode_mean_ms"], "select_tags": got["select_mean_ms"],
             "tagger_handler_rest": got["Tag_mean_ms"] - encoder_call,
             "router_to_tagger_hop": got["tag_mean_ms"] - got["Tag_mean_ms"],
             "score": got["score_mean_ms"], "decide": got["decide_mean_ms"],
             "router_handler_rest": got["Route_mean_ms"] - got["tag_mean_ms"] - got["score_mean_ms"] - got["decide_mean_ms"],
             "client_to_router_hop": float(np.mean(route_seconds)) * 1000 - got["Route_mean_ms"]}
    return {k: round(v, 3) for k, v in parts.items()}
