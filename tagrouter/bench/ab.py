"""Route p50 of stacks that differ in one thing, measured interleaved in one run (docs/BENCHMARKS.md):

    python -m tagrouter.bench.ab --variant streams --variant unary:TAGROUTER_TAG_STREAMS=0 \\
        [--variant old@/path/to/worktree] [--rounds 6] [--per-round 100] [--concurrency N]

A variant is NAME[@CHECKOUT][:VAR=VALUE,...]: a whole stack (its own embedded Redis) started from
CHECKOUT (default: this one; a worktree of an older commit compares code) with those environment
variables. Each round sends the same short real prompts (14-28 tokens, each made new to the tag
cache) one at a time to every variant in turn, and times the raw encoder (1 thread, in this process)
on them too, so load drifting on a shared machine hits all alike. Prints one JSON line: p50 and p90
per variant, and each p50 over the encoder's.

With `--concurrency N` (N > 1) each round instead sends `--per-round` Routes with N in flight to every
variant in turn (bounded by 10 s each; `--length long`: the bench's long prompts) and prints, per
variant, the answers a second that are not degraded, the degraded ones, p50, and the CPU its tagger and
router used: cores per process and per thread (the busiest first), read from /proc over the variant's
rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from tagrouter.bench.figures import latency_summary
from tagrouter.bench.load import concurrent_route
from tagrouter.bench.queries import load_prompts, prompts_dir, query_sets
from tagrouter.bench.report import cpu_seconds
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


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _service_pids(stack_pid: int) -> dict[str, int]:
    """The tagger's and router's pids among the stack process's children (python -m services.NAME)."""
    found = {}
    for pid in _children(stack_pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        for name in ("tagger", "router"):
            if f"services.{name}".encode() in argv:
                found[name] = pid
    return found


def _thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of `pid` so far."""
    out = {}
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        try:
            out[tid] = cpu_seconds(pid, tid)
        except FileNotFoundError:  # the thread ended between the listing and the read
            continue
    return out


def _load_rounds(variants, started, prompts: list[str], marker: str, args) -> dict:
    """--concurrency: Route with N in flight, variants in turn each round; goodput and CPU per variant."""
    pids = {name: _service_pids(proc.pid) for (name, _, _), (proc, _) in zip(variants, started)}
    totals = {name: {"ok": 0, "degraded": 0, "errors": 0, "wall_s": 0.0, "latencies": [],
                     "cpu": {service: {} for service in pids[name]}} for name, _, _ in variants}
    for r in range(args.rounds):
        for (name, _, _), (_, address) in zip(variants, started):
            queries = [f"[{marker}{name}{r}.{i}] {prompts[(r * args.per_round + i) % len(prompts)]}"
                       for i in range(args.per_round)]
            before = {service: _thread_seconds(pid) for service, pid in pids[name].items()}
            result = concurrent_route(address, queries, args.concurrency, budget_s=10.0)
            for service, pid in pids[name].items():
                used = totals[name]["cpu"][service]
                for tid, seconds in _thread_seconds(pid).items():
                    used[tid] = used.get(tid, 0.0) + seconds - before[service].get(tid, 0.0)
            total = totals[name]
            total["ok"] += len(result["latencies"]) - result["degraded"]
            total["degraded"] += result["degraded"]
            total["errors"] += result["errors"]
            total["wall_s"] += result["wall_s"]
            total["latencies"] += result["latencies"]
    report = {}
    for name, total in totals.items():
        wall = total["wall_s"]
        report[name] = {
            "ok_qps": round(total["ok"] / wall, 1), "degraded": total["degraded"], "errors": total["errors"],
            "p50_ms": latency_summary(total["latencies"]).get("p50_ms"),
            "cores": {service: {"process": round(sum(used.values()) / wall, 2),
                                "threads": [round(v / wall, 2) for v in sorted(used.values(), reverse=True)
                                            if v > 0.01 * wall]}
                      for service, used in total["cpu"].items()}}
    return {"concurrency": args.concurrency, "variants": report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tagrouter.bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME[@CHECKOUT][:VAR=VALUE,...]")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1, help="Routes in flight (default 1: latency)")
    parser.add_argument("--length", choices=("short", "long"), default="short",
                        help="with --concurrency: the bench's short (14-28 tokens) or long (340-460) prompts")
    args = parser.parse_args(argv)
    encoder = Encoder(REPO / "build" / "model", 1)
    prompts, _ = load_prompts(prompts_dir(None))  # ../shared/data/raw, else the built-in prompts
    sets = query_sets(prompts, encoder.count_tokens)
    short = sets["short"]
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
        if args.concurrency > 1:
            print(json.dumps(_load_rounds(variants, started, sets[args.length], marker, args)))
            return
        count = 0
        for r in range(args.rounds):
            for name in [*stubs, "encoder"]:
                for i in range(args.per_round):
                    count += 1
                    query = f"{short[(r * args.per_round + i) % len(short)]} [{marker}{count}]"
                    began = time.perf_counter()
                    if name == "encoder":
                        encoder.encode([query], heads=False)
                    else:
                        stubs[name].Route(router_pb2.RouteRequest(query=query), timeout=10)
                    seconds[name].append(time.perf_counter() - began)
    finally:
        for proc, _ in started:
            proc.stdin.close()
            proc.wait(60)
    summaries = {name: latency_summary(s) for name, s in seconds.items()}
    floor = summaries["encoder"]["p50_ms"]
    print(json.dumps({name: {"p50_ms": x["p50_ms"], "p90_ms": x["p90_ms"],
                             "p50_over_encoder_p50": round(x["p50_ms"] / floor, 3)}
                      for name, x in summaries.items()}))


if __name__ == "__main__":
    main()
