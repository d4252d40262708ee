"""One query length measured: the encoder floor beside Tag, Score and Route, in alternating rounds.

Per round: the encoder alone, one query at a time, back to back (the floor); then query by
query the encoder again (interleaved: context), Tag and Score directly, and Route; after the
c1 rounds, the cache hits (the same queries again); then per round the encoder batched and
Route with 8 and 32 calls in flight. Alternating keeps a drifting background load on both sides
of each ratio.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from tagrouter.bench.figures import (
    c1_breakdown,
    histogram_totals,
    latency_summary,
    mean_of,
    phase_means_ms,
    ratio,
    scrape_c1,
)
from tagrouter.bench.load import ENCODER_BATCH, concurrent_route, encoder_batch_qps, encoder_latencies, sequential_latencies
from tagrouter.bench.queries import Queries

CONCURRENCY = (8, 32)


@dataclass
class Target:
    """Addresses of the services under test (tagger and scorer may be unknown with --router)."""

    router: str
    tagger: str | None = None
    scorer: str | None = None
    router_metrics: str | None = None  # the router's /metrics URL, when the bench started it
    tagger_metrics: str | None = None  # the tagger's, likewise


@dataclass
class Plan:
    """How much to measure: per round and per phase, in requests and seconds."""

    rounds: int = 3
    c1_requests: int = 150  # per round, one in flight
    load_requests: int = 600  # per round and concurrency
    batch_queries: int = 256  # per round, the encoder batched
    phase_seconds: float = 10.0  # the time bound of each loop
    warmup: int = 20

    def scaled(self, factor: float) -> Plan:
        return Plan(self.rounds, max(8, int(self.c1_requests * factor)), max(16, int(self.load_requests * factor)),
                    max(ENCODER_BATCH, int(self.batch_queries * factor)), self.phase_seconds, self.warmup)


@dataclass
class C1:
    """What the one-at-a-time rounds measured (seconds per call)."""

    back_to_back: list = field(default_factory=list)  # the encoder alone: the floor
    interleaved: list = field(default_factory=list)  # the encoder between the RPCs
    tag: list = field(default_factory=list)
    score: list = field(default_factory=list)
    route: list = field(default_factory=list)
    cache_hits: list = field(default_factory=list)
    degraded: int = 0
    phases: list = field(default_factory=list)  # the router's phase means, one dict per round
    breakdowns: list = field(default_factory=list)  # c1_breakdown, one dict per round


@contextlib.contextmanager
def _stubs(target: Target):
    """(Route, Tag or None, Score or None) as blocking calls on their own channels."""
    import grpc

    from tagrouter.router.v1 import router_pb2_grpc
    from tagrouter.scorer.v1 import scorer_pb2_grpc
    from tagrouter.tagger.v1 import tagger_pb2_grpc

    with contextlib.ExitStack() as stack:
        def channel(address):
            return stack.enter_context(grpc.insecure_channel(address)) if address else None

        route, tag, score = channel(target.router), channel(target.tagger), channel(target.scorer)
        yield (router_pb2_grpc.RouterServiceStub(route).Route,
               tagger_pb2_grpc.TaggerServiceStub(tag).Tag if tag else None,
               scorer_pb2_grpc.ScorerServiceStub(score).Score if score else None)


def _timed(seconds: list, call, request):
    t0 = time.perf_counter()
    reply = call(request, timeout=10)
    seconds.append(time.perf_counter() - t0)
    return reply


def _c1_round(encoder, calls, target: Target, queries: Queries, plan: Plan, out: C1, seen: list) -> None:
    from tagrouter.router.v1 import router_pb2
    from tagrouter.scorer.v1 import scorer_pb2
    from tagrouter.tagger.v1 import tagger_pb2

    route, tag, score = calls
    batch = queries.take(plan.c1_requests)
    # The floor, measured as the issue and docs/PERFORMANCE.md define it: the encoder
    # alone, one query at a time, back to back.
    out.back_to_back += encoder_latencies(encoder, batch, plan.phase_seconds)
    before = histogram_totals(target.router_metrics)
    scraped = scrape_c1(target.router_metrics, target.tagger_metrics)
    routes_before = len(out.route)
    deadline = time.monotonic() + plan.phase_seconds
    for query, tag_query in zip(batch, queries.take(len(batch))):
        # One query at a time through each in turn: the encoder in this process again
        # (interleaved: context), Tag and Score directly, then Route, so load drifting on
        # a shared machine hits these figures alike.
        t0 = time.perf_counter()
        encoder.encode([query], heads=False)
        out.interleaved.append(time.perf_counter() - t0)
        if tag is not None:
            tagged = _timed(out.tag, tag, tagger_pb2.TagRequest(query=tag_query))
            if score is not None:
                weighted = [scorer_pb2.WeightedTag(name=t.name, weight=t.score) for t in tagged.tags]
                _timed(out.score, score, scorer_pb2.ScoreRequest(tags=weighted))
        out.degraded += _timed(out.route, route, router_pb2.RouteRequest(query=query)).degraded
        seen.append(query)
        if time.monotonic() > deadline:
            break
    out.phases.append(phase_means_ms(before, histogram_totals(target.router_metrics)))
    out.breakdowns.append(c1_breakdown(scraped, scrape_c1(target.router_metrics, target.tagger_metrics),
                                       out.route[routes_before:]))


def c1_rounds(encoder, target: Target, queries: Queries, plan: Plan, say, name: str) -> C1:
    """The one-at-a-time rounds, then the cache hits (the queries the tagger has seen once)."""
    from tagrouter.router.v1 import router_pb2

    out, seen = C1(), []
    with _stubs(target) as calls:
        # Warm-up: the first calls pay for connections, caches and allocator growth.
        warm = queries.take(plan.warmup)
        encoder_latencies(encoder, warm, plan.phase_seconds)
        sequential_latencies(calls[0], [router_pb2.RouteRequest(query=q) for q in warm], plan.phase_seconds)
        for r in range(plan.rounds):
            _c1_round(encoder, calls, target, queries, plan, out, seen)
            say(f"  {name} round {r + 1}/{plan.rounds}: encoder p50 {latency_summary(out.interleaved)['p50_ms']} ms, "
                f"Route c1 p50 {latency_summary(out.route)['p50_ms']} ms")
        out.cache_hits, _ = sequential_latencies(calls[0], [router_pb2.RouteRequest(query=q) for q in seen],
                                                 plan.phase_seconds)
    return out


def load_rounds(encoder, target: Target, queries: Queries, plan: Plan, say, name: str) -> tuple[dict, dict]:
    """Per round the encoder batched, then Route at each concurrency: (encoder batch, loads by concurrency)."""
    batch = {"queries": 0, "seconds": 0.0}
    loads = {c: {"latencies": [], "wall_s": 0.0, "errors": 0, "degraded": 0} for c in CONCURRENCY}
    for r in range(plan.rounds):
        n, s = encoder_batch_qps(encoder, queries.take(plan.batch_queries))
        batch["queries"] += n
        batch["seconds"] += s
        for c in CONCURRENCY:
            result = concurrent_route(target.router, queries.take(plan.load_requests), c, plan.phase_seconds)
            for key in ("latencies", "wall_s", "errors", "degraded"):
                loads[c][key] += result[key]
        say(f"  {name} round {r + 1}/{plan.rounds}: encoder batched {batch['queries'] / batch['seconds']:.0f} q/s, "
            + ", ".join(f"Route c{c} {(len(loads[c]['latencies']) - loads[c]['degraded']) / loads[c]['wall_s']:.0f} q/s "
                        f"({loads[c]['degraded']} degraded)" for c in CONCURRENCY))
    return batch, loads


def bench_length(name: str, encoder, target: Target, queries: Queries, plan: Plan, say) -> dict:
    """Every figure of one query length (the `short` or `long` object of BENCH.json)."""
    c1 = c1_rounds(encoder, target, queries, plan, say, name)
    batch, loads = load_rounds(encoder, target, queries, plan, say, name)
    encoder_c1 = latency_summary(c1.back_to_back)
    result = {
        "queries": {"base_prompts": len(queries.base), "measured": queries.issued,
                    "tokens_p50": int(np.median([encoder.count_tokens(q) for q in queries.peek(64)]))},
        "encoder": {**encoder_c1, "batch_qps": round(batch["queries"] / batch["seconds"], 1),
                    "batch_size": ENCODER_BATCH,
                    "threads": encoder.session.get_session_options().intra_op_num_threads,
                    "measured": "one query at a time, back to back, in rounds alternating with the services",
                    # Context, not the floor the ratios use: the encoder interleaved query by query
                    # with Tag, Score and Route, its caches and clocks as cold as a service's.
                    "interleaved": latency_summary(c1.interleaved)},
        "tag": {"c1": latency_summary(c1.tag)} if target.tagger else None,
        "score": {"c1": latency_summary(c1.score)} if target.scorer else None,
        "route": {"c1": {**latency_summary(c1.route), "degraded": c1.degraded,
                         # Where a c1 Route's time goes, as the router measured it (its /metrics).
                         "router_phases": mean_of(c1.phases),
                         # ... and split further, hop by hop, from the router's and tagger's /metrics
                         "breakdown_ms": mean_of(c1.breakdowns)},
                  "c1_cache_hit": latency_summary(c1.cache_hits)},
    }
    for c in CONCURRENCY:
        agg = loads[c]
        # A degraded answer (a downstream missed its deadline) is not a routed query: not counted.
        ok = len(agg["latencies"]) - agg["degraded"]
        result["route"][f"c{c}"] = {"qps": round(ok / agg["wall_s"], 1) if agg["wall_s"] else None,
                                    **latency_summary(agg["latencies"]), "errors": agg["errors"],
                                    "degraded": agg["degraded"]}
    result["ratios"] = ratios(result, result["encoder"].get("p50_ms"))
    result["ratios"]["route_c32_qps_over_encoder_batch_qps"] = ratio(result["route"]["c32"]["qps"],
                                                                     result["encoder"]["batch_qps"])
    result["ratios_vs_interleaved_encoder"] = ratios(result, result["encoder"]["interleaved"].get("p50_ms"))
    return result


def ratios(result: dict, encoder_p50: float | None) -> dict:
    """Route c1 p50 and p99 over an encoder p50."""
    route_c1 = result["route"]["c1"]
    return {"route_p50_over_encoder_p50": ratio(route_c1.get("p50_ms"), encoder_p50),
            "route_p99_over_encoder_p50": ratio(route_c1.get("p99_ms"), encoder_p50)}
