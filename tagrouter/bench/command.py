"""`tagrouter bench`: the full bench, or the bench/ghz scenarios, against a stack it starts or a running one."""
from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from tagrouter.bench.ghz import run_ghz_scenario
from tagrouter.bench.load import check_loopback
from tagrouter.bench.measure import Plan, Target, bench_length
from tagrouter.bench.queries import Queries, load_prompts, prompts_dir, query_sets
from tagrouter.bench.report import check_targets, load_average, machine, target_lines, versions, write_json

DEFAULT_OUT = Path("build/BENCH.json")
FLOOR_THREADS = 1  # the floor every ratio divides by: the raw int8 encoder on one thread
CACHE_NOTE = ("misses: every measured query is distinct (a real prompt plus a run-unique marker); "
              "route.c1_cache_hit replays queries the tagger has already seen")


@contextlib.contextmanager
def target_stack(args):
    """The services to measure: `--router` (and `--tagger`, `--scorer`) when given, else a LocalStack.

    Yields (Target, whether the bench started it). The bench's stack is the three services on
    loopback (like production) plus Redis, each with a /metrics port and a log in a temp folder.
    """
    if args.router:
        for address in filter(None, (args.router, args.tagger, args.scorer)):
            check_loopback(address)
        yield Target(router=args.router, tagger=args.tagger, scorer=args.scorer), False
        return
    from tagrouter.stack import LocalStack

    env = dict(os.environ, TAGROUTER_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               TAGROUTER_HOST="127.0.0.1")
    log_dir = Path(tempfile.mkdtemp(prefix="tagrouter-bench-"))
    with LocalStack(env=env, metrics=True, log_dir=log_dir) as stack:
        yield Target(router=stack.router, tagger=stack.tagger, scorer=stack.scorer,
                     router_metrics=stack.metrics_urls["router"], tagger_metrics=stack.metrics_urls["tagger"]), True


def run_ghz(args) -> int:
    """`tagrouter bench --ghz-config FILE...`: the ghz scenarios through the Python client."""
    with target_stack(args) as (target, _):
        results = [dict(config=str(path), **run_ghz_scenario(path, target.router, args.ghz_total))
                   for path in args.ghz_config]
    print(write_json({"ghz_scenarios": results, "machine": machine(), "versions": versions()}, args.out))
    return 1 if any(set(r["status_distribution"]) - {"OK"} for r in results) else 0


def run(args) -> int:
    """`tagrouter bench` with the CLI's argparse namespace; 1 with --check when a target is not met."""
    if args.ghz_config:
        return run_ghz(args)
    if args.extproc_overhead:
        from tagrouter.bench.extproc_overhead import run_extproc_overhead

        prompts, _ = load_prompts(prompts_dir(args.shared))
        return run_extproc_overhead(args, prompts)
    if args.weights_deltas:
        from tagrouter.bench.weights_deltas import run_weights_deltas

        return run_weights_deltas(args)
    if args.tracing_overhead:
        from tagrouter.bench.tracing_overhead import run_tracing_overhead

        prompts, _ = load_prompts(prompts_dir(args.shared))
        return run_tracing_overhead(args, prompts)
    from services.common.settings import TaggerSettings
    from tagrouter.core.encoder import Encoder

    out = args.out or DEFAULT_OUT

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    settings = TaggerSettings.from_env()
    # The floor: the raw encoder on one thread, whatever the tagger's own setting.
    encoder = Encoder(settings.model_dir, FLOOR_THREADS)
    prompts, source = load_prompts(prompts_dir(args.shared))
    bases = query_sets(prompts, encoder.count_tokens)
    run_id = secrets.token_hex(2)
    plan = Plan(rounds=args.rounds, phase_seconds=args.phase_seconds).scaled(args.scale)
    doc = {"tagrouter_bench": 1, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
           "versions": versions(), "encoder_threads": FLOOR_THREADS,
           # the tagger the bench starts reads the same environment; a running one (--router) is not known
           "tagger_threads": None if args.router else settings.intra_op_threads,
           "tagger_heads": None if args.router else settings.use_heads, "queries_source": source,
           "tag_cache": CACHE_NOTE, "plan": plan.__dict__}
    if not args.router:
        say("starting tagger, scorer and router (three processes) and Redis ...")
    with target_stack(args) as (target, started):
        doc["stack"] = ({"started_by_bench": True, "processes": ["tagger", "scorer", "router", "redis-server"]}
                        if started else {"started_by_bench": False, "router": args.router})
        for length in args.lengths:
            say(f"{length} queries:")
            scaled = plan if length == "short" else plan.scaled(0.25)
            doc[length] = bench_length(length, encoder, target, Queries(bases[length], f"{run_id}{length[0]}"),
                                       scaled, say)
        if args.peer_runs:  # the shared peer comparison on the same stack, in the same run
            from tagrouter.bench.peer import run_peer

            doc["peer"] = run_peer(target.router, settings.model_dir, args.peer_runs, say=say)
    doc["machine"]["load_average_at_end"] = load_average()
    doc["targets"] = check_targets(doc)
    doc["all_targets_met"] = all(t["met"] for t in doc["targets"].values())
    write_json(doc, out)
    say(f"wrote {out}")
    for line in target_lines(doc["targets"]):
        say(line)
    return 1 if args.check and not doc["all_targets_met"] else 0
