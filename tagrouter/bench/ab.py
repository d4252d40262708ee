"""Route p50 of stacks that differ in one thing, measured interleaved in one run (docs/BENCHMARKS.md):

    python -m tagrouter.bench.ab --variant streams --variant unary:TAGROUTER_TAG_STREAMS=0 \\
        [--variant old@/path/to/worktree] [--rounds 6] [--per-round 100]

A variant is NAME[@CHECKOUT][:VAR=VALUE,...]: a whole stack (its own embedded Redis) started from
CHECKOUT (default: this one; a worktree of an older commit compares code) with those environment
variables. Each round sends the same short real prompts (14-28 tokens, each made new to the tag
cache) one at a time to every variant in turn, and times the raw encoder (1 thread, in this process)
on them too, so load drifting on a shared machine hits all alike. Prints one JSON line: p50 and p90
per variant, and each p50 over the encoder's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from tagrouter.bench.queries import load_prompts, prompts_dir, query_sets
from tagrouter.core.encoder import Encoder
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
# Run in the variant's checkout: its own tagrouter and services, the model of this checkout's build.
LAUNCH = ("import sys; from tagrouter.stack import LocalStack\n"
          "with LocalStack(quiet=True) as stack:\n"
          "    print(stack.router, flush=True); sys.stdin.read()\n")


def parse_variant(text: str) -> tuple[str, Path, dict[str, str]]:
    head, _, settings = text.partition(":")
    name, _, checkout = head.partition("@")
    env = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return name, Path(checkout) if checkout else REPO, env


def start(checkout: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    merged = dict(os.environ, **env)
    if checkout != REPO:
        merged.setdefault("TAGROUTER_MODEL_DIR", str(REPO / "build" / "model"))
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH], cwd=checkout, env=merged, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    address = proc.stdout.readline().strip()
    if not address:
        raise RuntimeError(f"the stack from {checkout} did not start (exit {proc.wait(30)})")
    return proc, address


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tagrouter.bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME[@CHECKOUT][:VAR=VALUE,...]")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args(argv)
    encoder = Encoder(REPO / "build" / "model", 1)
    prompts, _ = load_prompts(prompts_dir(None))  # ../shared/data/raw, else the built-in prompts
    short = query_sets(prompts, encoder.count_tokens)["short"]
    variants = [parse_variant(v) for v in args.variant]
    started = [start(checkout, env) for _, checkout, env in variants]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in variants} | {"encoder": []}
    marker = uuid.uuid4().hex[:8]
    try:
        stubs = {name: router_pb2_grpc.RouterServiceStub(grpc.insecure_channel(address))
                 for (name, _, _), (_, address) in zip(variants, started)}
        for stub in stubs.values():  # warm-up
            for i in range(30):
                stub.Route(router_pb2.RouteRequest(query=f"warm-up {i} {short[i % len(short)]}"), timeout=10)
        count = 0
        for r in range(args.rounds):
            for name in [*stubs, "encoder"]:
                for i in range(args.per_round):
                    count += 1
                    query = f"{short[(r * args.per_round + i) % len(short)]} [{marker}{count}]"
                    began = time.perf_counter()
                    if name == "encoder":
                        encoder.encode([query])
                    else:
                        stubs[name].Route(router_pb2.RouteRequest(query=query), timeout=10)
                    seconds[name].append(time.perf_counter() - began)
    finally:
        for proc, _ in started:
            proc.stdin.close()
            proc.wait(60)
    floor = statistics.median(seconds["encoder"])
    print(json.dumps({name: {"p50_ms": round(statistics.median(s) * 1000, 3),
                             "p90_ms": round(sorted(s)[int(0.9 * len(s))] * 1000, 3),
                             "p50_over_encoder_p50": round(statistics.median(s) / floor, 3)}
                      for name, s in seconds.items()}))


if __name__ == "__main__":
    main()
