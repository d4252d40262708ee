"""`tagrouter serve`: one service in this process, or all three through the local-stack launcher."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading

from tagrouter.cli.common import fail
from tagrouter.cli.route import call_route, print_route, route_request

SERVE_PORTS = {"router": 50051, "scorer": 50052, "tagger": 50053, "gateway": 8080, "extproc": 50054}


def cmd_serve(args) -> int:
    """One service in this process (as `python -m services.NAME`), or all three through the launcher."""
    if args.service != "all":
        flags = []
        if args.port is not None:
            flags += ["--port", str(args.port)]
        if args.service == "router":
            flags += [f for opt, v in (("--tagger-addr", args.tagger_addr), ("--scorer-addr", args.scorer_addr))
                      if v for f in (opt, v)]
        if args.service == "gateway":
            flags += [f for opt, v in (("--router", args.router), ("--upstreams", args.upstreams)) if v for f in (opt, v)]
        return subprocess.call([sys.executable, "-m", f"services.{args.service}", *flags])
    from tagrouter.stack import LocalStack

    # the router's Envoy external processor on its default port while the router is on its own
    ports = {"router": SERVE_PORTS["router"] if args.port is None else args.port,
             "extproc": SERVE_PORTS["extproc"] if args.port is None else None,
             "scorer": args.scorer_port, "tagger": args.tagger_port, "gateway": args.gateway_port}
    upstreams = args.upstreams or os.environ.get("TAGROUTER_UPSTREAMS", "").strip() or None
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        with LocalStack(ports=ports, metrics=True, upstreams=upstreams) as stack:
            if args.sample:
                _route_sample(stack, args.sample)
            if args.samples:
                print_first_screen(stack.router)
            if upstreams:
                print(f"OpenAI-compatible gateway: {stack.gateway} (model \"auto\" routes)", flush=True)
            print("metrics: " + ", ".join(f"{n} {u}" for n, u in stack.metrics_urls.items()) + "\n", flush=True)
            while not stopping.is_set() and all(p.proc.poll() is None for p in stack.processes.values()):
                stopping.wait(0.5)
            exited = [n for n, p in stack.processes.items() if p.proc.poll() is not None]
    except (RuntimeError, TimeoutError) as err:
        return fail(f"the stack did not start: {err}", 1)
    if exited and not stopping.is_set():
        return fail(f"{', '.join(exited)} exited; the stack is stopped", 1)
    return 0


def _route_sample(stack, text: str) -> None:
    """Route `text` once the stack is up and print the answer, so `make run` shows it working."""
    request = route_request(argparse.Namespace(text=text, candidates=None, cost_weight=None, client_tags=None,
                                               quality_margin=None))
    response = asyncio.run(call_route(stack.router, request, 10))
    print(f"\nTagRouter is up: router on {stack.router}. Sample route for {text!r}:")
    print_route(response, as_json=True)
    print('Try: .venv/bin/tagrouter route "your query" --json   (Ctrl-C stops the stack)', flush=True)


# The first screen of `make run`: varied queries at a few operating points, so routing is seen to happen.
SAMPLE_QUERIES = ("hi", "What is 2+2?", "Write a haiku about the sea", "Prove that there are infinitely many primes",
                  "Write a Rust function that parses a CSV line into a Vec<String>, handling quoted fields")
# (label, RouteRequest knob fields): the weights' recommended default, then two cost caps low enough
# that the sample queries are seen to move (with the starter weights, caps of 50 and 20 moved none:
# their savings come from other kinds of query)
SAMPLE_POINTS = (("default", {}), ("max_cost_pct 10", {"max_cost_pct": 10.0}),
                 ("max_cost_pct 5", {"max_cost_pct": 5.0}))


def sample_routes(address: str, queries=SAMPLE_QUERIES, points=SAMPLE_POINTS) -> dict:
    """{point label: [RouteResponse per query]} from the router at `address`."""
    from tagrouter.router.v1 import router_pb2

    async def run():
        return {label: [await call_route(address, router_pb2.RouteRequest(query=q, **knob), 10) for q in queries]
                for label, knob in points}

    return asyncio.run(run())


def print_first_screen(address: str) -> None:
    """Routes SAMPLE_QUERIES at SAMPLE_POINTS and prints model and estimated cost of each."""
    routes = sample_routes(address)
    print(f"\nTagRouter is up: router on {address}. Five queries at three operating points "
          "(model, estimated cost):")
    for label, replies in routes.items():
        first = replies[0]
        print(f"\n  {label}: cost_weight {first.cost_weight:.3g} ({first.knob_source}; on the fit's selection rows "
              f"{first.knob_cost_pct:.0f}% of the priciest model's cost, {first.knob_quality_pct:.0f}% of the best "
              "model's accept rate)")
        for q, r in zip(SAMPLE_QUERIES, replies):
            short = q if len(q) <= 44 else q[:41] + "..."
            print(f"    {short:<45} -> {r.model:<36} ${r.estimated_cost_usd:.6f}")
    print("\nRoute your own (in another terminal):\n"
          '  .venv/bin/tagrouter route "your query"                     # the default operating point\n'
          '  .venv/bin/tagrouter route "your query" --max-cost-pct 30   # or --min-quality-pct 95, --cost-weight L\n'
          "Your own models and outcomes: docs/QUICKSTART.md. Ctrl-C stops the stack.", flush=True)


def add_parsers(sub) -> None:
    serve = sub.add_parser("serve", help="run a service (or all three, with an embedded Redis if REDIS_URL is unset)")
    serve.add_argument("service", choices=["tagger", "scorer", "router", "gateway", "all"])
    serve.add_argument("--port", type=int, help="gRPC port (overrides TAGROUTER_PORT; the router's with `all`)")
    serve.add_argument("--tagger-addr", help="router: tagger host:port (overrides TAGGER_ADDR)")
    serve.add_argument("--scorer-addr", help="router: scorer host:port (overrides SCORER_ADDR)")
    serve.add_argument("--tagger-port", type=int, default=SERVE_PORTS["tagger"],
                       help="with `all`: tagger port (0: any free port)")
    serve.add_argument("--scorer-port", type=int, default=SERVE_PORTS["scorer"],
                       help="with `all`: scorer port (0: any free port)")
    serve.add_argument("--router", help="gateway: router host:port (overrides ROUTER_ADDR)")
    serve.add_argument("--upstreams", help="gateway, or `all` to start the gateway too: JSON or YAML file, pool model "
                       "-> base_url, model, api_key_env (overrides TAGROUTER_UPSTREAMS)")
    serve.add_argument("--gateway-port", type=int, default=SERVE_PORTS["gateway"],
                       help="with `all` and an upstreams file: the gateway's HTTP port (0: any free port)")
    serve.add_argument("--sample", help="with `all`: route this query once ready and print the answer")
    serve.add_argument("--samples", action="store_true",
                       help="with `all`: route five varied queries at three operating points once ready (make run)")
    serve.set_defaults(func=cmd_serve)
