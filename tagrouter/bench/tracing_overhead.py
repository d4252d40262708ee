"""`tagrouter bench --tracing-overhead`: Route p50 with tracing off against tracing on at a 1% sampler.

Two stacks run side by side on loopback, one without an OTLP endpoint and one exporting to a real
OTLP receiver with `parentbased_traceidratio` 0.01 (and, for context, a third sampling every Route);
rounds of one-at-a-time Routes alternate between them so a drifting background load hits all alike.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from tagrouter.bench.figures import latency_summary, ratio
from tagrouter.bench.load import sequential_latencies
from tagrouter.bench.report import machine, versions, write_json

SETUPS = {"off": {}, "on_1pct": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
          "on_100pct": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}}
TARGET_OVERHEAD = 1.05  # 1% sampling may add at most 5% to Route p50


def run_tracing_overhead(args, queries: list[str]) -> int:
    import grpc

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc
    from tagrouter.stack import LocalStack
    from tagrouter.stack.otlp import OtlpReceiver

    per_round = max(20, int(150 * args.scale))
    seconds = {name: [] for name in SETUPS}
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(OtlpReceiver())
        routes = {}
        for name, extra in SETUPS.items():
            env = dict(os.environ, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_HOST="127.0.0.1", **extra)
            if name != "off":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
            services = stack.enter_context(LocalStack(env=env, log_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))))
            channel = stack.enter_context(grpc.insecure_channel(services.router))
            routes[name] = router_pb2_grpc.RouterServiceStub(channel).Route
        issued = 0
        for r in range(args.rounds + 1):  # round 0 warms every stack up and is not counted
            for name, route in routes.items():
                batch = [router_pb2.RouteRequest(query=f"{queries[(issued + i) % len(queries)]} [{name} {r} {i}]")
                         for i in range(per_round)]
                issued += per_round
                got, _ = sequential_latencies(route, batch, args.phase_seconds)
                if r:
                    seconds[name] += got
        time.sleep(1.0)  # the last export batch
        spans = receiver.received
    summary = {name: latency_summary(s) for name, s in seconds.items()}
    over = ratio(summary["on_1pct"]["p50_ms"], summary["off"]["p50_ms"])
    doc = {"tracing_overhead": summary, "routes_per_round": per_round, "rounds": args.rounds, "spans_received": spans,
           "on_1pct_p50_over_off_p50": over, "on_100pct_p50_over_off_p50":
           ratio(summary["on_100pct"]["p50_ms"], summary["off"]["p50_ms"]),
           "target_met": over is not None and over <= TARGET_OVERHEAD, "machine": machine(), "versions": versions()}
    print(write_json(doc, args.out or Path("build/BENCH_TRACING.json")))
    return 1 if args.check and not doc["target_met"] else 0
