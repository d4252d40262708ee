"""`tagrouter serve`: one service in this process, or all three through the local-stack launcher."""
from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import threading

from tagrouter.cli.common import fail
from tagrouter.cli.route import call_route, print_route, route_request

SERVE_PORTS = {"router": 50051, "scorer": 50052, "tagger": 50053}


def cmd_serve(args) -> int:
    """One service in this process (as `python -m services.NAME`), or all three through the launcher."""
    if args.service != "all":
        flags = []
        if args.port is not None:
            flags += ["--port", str(args.port)]
        if args.service == "router":
            flags += [f for opt, v in (("--tagger-addr", args.tagger_addr), ("--scorer-addr", args.scorer_addr))
                      if v for f in (opt, v)]
        return subprocess.call([sys.executable, "-m", f"services.{args.service}", *flags])
    from tagrouter.stack import LocalStack

    ports = {"router": SERVE_PORTS["router"] if args.port is None else args.port,
             "scorer": args.scorer_port, "tagger": args.tagger_port}
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        with LocalStack(ports=ports, metrics=True) as stack:
            if args.sample:
                _route_sample(stack, args.sample)
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


def add_parsers(sub) -> None:
    serve = sub.add_parser("serve", help="run a service (or all three, with an embedded Redis if REDIS_URL is unset)")
    serve.add_argument("service", choices=["tagger", "scorer", "router", "all"])
    serve.add_argument("--port", type=int, help="gRPC port (overrides TAGROUTER_PORT; the router's with `all`)")
    serve.add_argument("--tagger-addr", help="router: tagger host:port (overrides TAGGER_ADDR)")
    serve.add_argument("--scorer-addr", help="router: scorer host:port (overrides SCORER_ADDR)")
    serve.add_argument("--tagger-port", type=int, default=SERVE_PORTS["tagger"],
                       help="with `all`: tagger port (0: any free port)")
    serve.add_argument("--scorer-port", type=int, default=SERVE_PORTS["scorer"],
                       help="with `all`: scorer port (0: any free port)")
    serve.add_argument("--sample", help="with `all`: route this query once ready and print the answer")
    serve.set_defaults(func=cmd_serve)
