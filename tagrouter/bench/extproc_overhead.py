"""`tagrouter bench --extproc-overhead`: the latency the router's Envoy external processor adds.

One real Envoy with two listeners in front of the same local OpenAI-compatible upstream
(tagrouter/stack/fake_upstream.py): one with the ext_proc filter to the router of a local stack
(`model: "auto"`, routed, rewritten), one straight to the upstream. Rounds of one-at-a-time
requests alternate between the two and Route called directly over gRPC, every query distinct (the
tagger's cache misses on all), so the three see the same background load. The figure: the added
p50 (with the filter minus straight) against Route's own p50 in the same run.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import tempfile
from pathlib import Path

from tagrouter.bench.figures import latency_summary, ratio
from tagrouter.bench.load import sequential_latencies
from tagrouter.bench.report import machine, versions, write_json

TARGET_ADDED_OVER_ROUTE = 1.5  # the filter may add at most 1.5x Route's own p50 (issue 17)
DEFAULT_OUT = Path("build/BENCH_EXTPROC.json")


class Client:
    """A keep-alive HTTP/1.1 connection to one Envoy listener; `call(query)` posts a chat completion."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def __call__(self, query: str, timeout: float = 10) -> int:
        # bytes: http.client then sends headers and body in one write (no Nagle/delayed-ACK stall)
        body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": query}]}).encode()
        self.conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        answer = self.conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"Envoy answered {answer.status}")
        return answer.status

    def close(self) -> None:
        self.conn.close()


def run_extproc_overhead(args, queries: list[str]) -> int:
    import grpc

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc
    from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
    from tagrouter.stack import LocalStack
    from tagrouter.stack.embedded_redis import free_port
    from tagrouter.stack.envoy import Envoy, Listener, envoy_binary
    from tagrouter.stack.fake_upstream import FakeUpstream

    binary = envoy_binary()
    if binary is None:
        raise SystemExit("no envoy binary: run `make envoy-tools` (or set TAGROUTER_ENVOY)")
    per_round = max(20, int(150 * args.scale))
    run_id = secrets.token_hex(2)
    seconds: dict[str, list[float]] = {"straight": [], "with_extproc": [], "route": []}
    with contextlib.ExitStack() as exits:
        env = dict(os.environ, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_HOST="127.0.0.1")
        stack = exits.enter_context(LocalStack(env=env, log_dir=Path(tempfile.mkdtemp(prefix="bench-extproc-"))))
        channel = exits.enter_context(grpc.insecure_channel(stack.router))
        models = scorer_pb2_grpc.ScorerServiceStub(exits.enter_context(grpc.insecure_channel(stack.scorer))).ListModels(
            scorer_pb2.ListModelsRequest(), timeout=10).models
        upstream = exits.enter_context(FakeUpstream(chunk_delay_s=0.0))
        straight = Listener(free_port(), direct=upstream.port)
        filtered = Listener(free_port(), extproc=stack.extproc, upstreams={m.name: upstream.port for m in models})
        exits.enter_context(Envoy(binary, [straight, filtered]))
        route = router_pb2_grpc.RouterServiceStub(channel).Route
        calls = {"straight": Client(straight.port), "with_extproc": Client(filtered.port),
                 "route": lambda q, timeout: route(router_pb2.RouteRequest(query=q), timeout=timeout)}
        for client in (calls["straight"], calls["with_extproc"]):
            exits.callback(client.close)
        issued = 0
        for r in range(args.rounds + 1):  # round 0 warms every path up and is not counted
            for name, call in calls.items():
                batch = [f"{queries[(issued + i) % len(queries)]} [{run_id} {name} {r} {i}]" for i in range(per_round)]
                issued += per_round
                got, _ = sequential_latencies(call, batch, args.phase_seconds)
                if r:
                    seconds[name] += got
        served = len(upstream.requests)
    summary = {name: latency_summary(s) for name, s in seconds.items()}
    added = {q: round(summary["with_extproc"][f"{q}_ms"] - summary["straight"][f"{q}_ms"], 3) for q in ("p50", "p99")}
    over = ratio(added["p50"], summary["route"]["p50_ms"])
    doc = {"extproc_overhead": summary, "added_ms": added, "added_p50_over_route_p50": over,
           "target": f"added p50 <= {TARGET_ADDED_OVER_ROUTE} x Route p50",
           "target_met": over is not None and over <= TARGET_ADDED_OVER_ROUTE,
           "requests_per_round": per_round, "rounds": args.rounds, "upstream_requests": served,
           "envoy": str(binary), "machine": machine(), "versions": versions()}
    print(write_json(doc, args.out or DEFAULT_OUT))
    return 1 if args.check and not doc["target_met"] else 0
