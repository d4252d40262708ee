"""`tagrouter bench`: the encoder floor and Tag/Score/Route latency and throughput (`tagrouter.bench.run`)."""
from __future__ import annotations

from pathlib import Path

from tagrouter.cli.common import fail


def cmd_bench(args) -> int:
    from tagrouter.bench import run

    if (args.tagger or args.scorer) and not args.router:
        return fail("--tagger and --scorer go with --router (a running stack)")
    return run(args)


def add_parsers(sub) -> None:
    bench = sub.add_parser("bench", help="measure the encoder floor and Tag/Score/Route latency and throughput")
    bench.add_argument("--out", type=Path, help="results (default build/BENCH.json; with --ghz-config: stdout only)")
    bench.add_argument("--router", help="bench a running router at host:port (loopback) instead of starting a stack")
    bench.add_argument("--tagger", help="with --router: also measure Tag at this tagger")
    bench.add_argument("--scorer", help="with --router: also measure Score at this scorer")
    bench.add_argument("--lengths", nargs="*", choices=["short", "long"], default=["short", "long"],
                       help="query lengths to measure (none: only --peer)")
    bench.add_argument("--peer", dest="peer_runs", type=int, nargs="?", const=2, default=0, metavar="RUNS",
                       help="then run ../shared/bench/peer/route_vs_peer.py (3 rounds) RUNS times (default 2) "
                            "against the same stack, when its environment exists ($PEER_HOME or /tmp/tagrouter-peer)")
    bench.add_argument("--rounds", type=int, default=3, help="interleaved rounds per query length (default 3)")
    bench.add_argument("--scale", type=float, default=1.0, help="multiply the request counts (0.1 for a smoke run)")
    bench.add_argument("--phase-seconds", type=float, default=10.0, help="time bound of each request loop")
    bench.add_argument("--shared", type=Path, default=None, help="folder of raw prompt sets (default ../shared/data/raw)")
    bench.add_argument("--ghz-config", type=Path, nargs="+", metavar="FILE",
                       help="run these bench/ghz scenarios (as ghz would) instead of the full bench")
    bench.add_argument("--ghz-total", type=int, help="with --ghz-config: at most this many requests per scenario")
    bench.add_argument("--tracing-overhead", action="store_true",
                       help="Route p50 with tracing off against a 1%% sampler exporting to an OTLP receiver")
    bench.add_argument("--extproc-overhead", action="store_true",
                       help="latency the router's Envoy external processor adds: a real Envoy with the filter "
                            "against Envoy straight to a local upstream, and Route's own p50, in one run")
    bench.add_argument("--weights-deltas", action="store_true",
                       help="the router's copy under a steady Feedback load on synthetic weights, with WatchWeights "
                            "deltas and with whole resends in one run: Feedback/s, router CPU, copy lag p50/p99")
    bench.add_argument("--feedback-rate", type=float, default=1000.0, help="with --weights-deltas: Feedback per second")
    bench.add_argument("--tags", type=int, default=10_000, help="with --weights-deltas: synthetic tags (default 10000)")
    bench.add_argument("--models", type=int, default=20, help="with --weights-deltas: synthetic models (default 20)")
    bench.add_argument("--check", action="store_true", help="exit 1 when a target of issue 5 is not met")
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)
