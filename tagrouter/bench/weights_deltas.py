"""`tagrouter bench --weights-deltas`: the router's copy under a steady Feedback load, with WatchWeights
deltas and with whole resends, in one run.

Synthetic weights of TAGS tags x MODELS models are loaded into a private Redis; for each mode a
scorer (TAGROUTER_WATCH_DELTAS=true, then false) and a router that follows it are started, and a
paced client sends Feedback at RATE per second for SECONDS seconds (loopback only, bounded in
count and time). Reported per mode: Feedback acknowledged per second, the router's CPU seconds
per second of load (/proc of the router process), and the p50/p99 of the copy's lag
(tagrouter_weights_copy_lag_seconds on the router: from the scorer's last read of Redis without a
change to the copy's update, an upper bound).
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
import urllib.request

import grpc

from services.scorer.store import WeightStore
from tagrouter.bench.report import cpu_seconds, machine, write_json
from tagrouter.core.scoring import ALL_QUERIES_TAG, ScoringParams
from tagrouter.core.weights import ModelPrice, Weights
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack import ServiceProcess
from tagrouter.stack.embedded_redis import EmbeddedRedis, free_port
from tagrouter.stack.health import wait_serving

TAGS, MODELS = 10_000, 20
TAGS_PER_FEEDBACK = 3
CONCURRENCY = 32
LAG_METRIC = "tagrouter_weights_copy_lag_seconds"


def synthetic_weights(tags: int = TAGS, models: int = MODELS, seed: int = 0) -> Weights:
    rng = random.Random(seed)
    pool = [ModelPrice(f"m{i:02d}", 0.1 + i, 0.2 + 2 * i) for i in range(models)]
    counts = {}
    for t in range(tags):
        per = {}
        for m in pool:
            win, tie, loss = rng.randint(0, 40), rng.randint(0, 10), rng.randint(0, 40)
            per[m.name] = [float(win), float(tie), float(loss), float(win + tie + loss), float(300 * (win + tie + loss))]
        counts[f"t{t:05d}"] = per
    counts[ALL_QUERIES_TAG] = {m.name: [4e4, 1e4, 4e4, 9e4, 2.7e7] for m in pool}
    return Weights(models=pool, params=ScoringParams(), counts=counts, provenance="synthetic (bench)", version="synthetic")


def lag_buckets(metrics_url: str) -> dict[float, float]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(f"{LAG_METRIC}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The q-quantile of the observations between two scrapes, interpolated within its bucket."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for edge, cumulative in zip(edges, counts):
        if cumulative >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = edge, cumulative
    return lower


async def feedback_load(address: str, rate: float, seconds: float, tags: int, models: int) -> tuple[int, int, float]:
    """(acknowledged, failed, seconds taken): `rate` Feedback per second, paced, at most rate x seconds calls."""
    total = int(rate * seconds)
    rng = random.Random(1)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        queue: asyncio.Queue = asyncio.Queue(maxsize=CONCURRENCY * 4)
        done = [0, 0]

        async def worker():
            while (request := await queue.get()) is not None:
                try:
                    await stub.Feedback(request, timeout=5)
                    done[0] += 1
                except grpc.aio.AioRpcError:
                    done[1] += 1

        workers = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
        started = time.monotonic()
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - started > seconds * 2:
                break  # bounded in time too, if the scorer cannot keep up
            names = [f"t{rng.randrange(tags):05d}" for _ in range(TAGS_PER_FEEDBACK)]
            await queue.put(scorer_pb2.FeedbackRequest(
                tags=scorer_pb2.TagList(names=names), model=f"m{rng.randrange(models):02d}",
                outcome=rng.choice((scorer_pb2.OUTCOME_WIN, scorer_pb2.OUTCOME_TIE, scorer_pb2.OUTCOME_LOSS)),
                output_tokens=float(rng.randint(10, 900))))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        return done[0], done[1], time.monotonic() - started


def run_mode(redis_url: str, deltas: bool, rate: float, seconds: float, tags: int, models: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGROUTER_")}
    env.update(REDIS_URL=redis_url, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_HOST="127.0.0.1",
               TAGROUTER_WATCH_DELTAS=str(deltas).lower(), TAGROUTER_METRICS_PORT="0", PYTHONUNBUFFERED="1",
               TAGROUTER_MAX_ADMIN_RPCS="256", TAGROUTER_EXTPROC_PORT="0")
    scorer = ServiceProcess("scorer", env, output=subprocess.DEVNULL)
    metrics_port = free_port()
    router = ServiceProcess("router", dict(env, SCORER_ADDR=scorer.address, TAGGER_ADDR=f"127.0.0.1:{free_port()}",
                                           TAGROUTER_METRICS_PORT=str(metrics_port)), output=subprocess.DEVNULL)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        wait_serving(scorer.address, "tagrouter.scorer.v1.ScorerService", 120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the router's copy holds the whole weights
            try:
                text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
                if "tagrouter_weights_copy_age_seconds +Inf" not in text:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        time.sleep(1.0)
        lag_before, cpu_before = lag_buckets(metrics_url), cpu_seconds(router.proc.pid)
        acknowledged, failed, took = asyncio.run(feedback_load(scorer.address, rate, seconds, tags, models))
        time.sleep(1.0)  # the last changes reach the copy
        cpu = cpu_seconds(router.proc.pid) - cpu_before
        lag_after = lag_buckets(metrics_url)
        return dict(mode="deltas" if deltas else "full resends", feedback_acknowledged=acknowledged,
                    feedback_failed=failed, feedback_per_second=round(acknowledged / took, 1),
                    router_cpu_seconds_per_second=round(cpu / (took + 1.0), 4),
                    copy_updates=int(lag_after.get(float("inf"), 0) - lag_before.get(float("inf"), 0)),
                    copy_lag_p50_s=_round(quantile(lag_before, lag_after, 0.5)),
                    copy_lag_p99_s=_round(quantile(lag_before, lag_after, 0.99)))
    finally:
        router.stop()
        scorer.stop()


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def run_weights_deltas(args) -> int:
    rate, seconds = args.feedback_rate, args.phase_seconds
    with EmbeddedRedis() as url:
        async def load():
            store = WeightStore.from_url(url)
            try:
                return await store.load(synthetic_weights(args.tags, args.models))
            finally:
                await store.close()
        version = asyncio.run(load())
        results = [run_mode(url, deltas, rate, seconds, args.tags, args.models) for deltas in (True, False)]
    delta, full = results
    ratio = full["router_cpu_seconds_per_second"] / max(delta["router_cpu_seconds_per_second"], 1e-6)
    report = dict(weights_deltas=dict(tags=args.tags, models=args.models, version=version, feedback_rate=rate,
                                      seconds=seconds, modes=results, router_cpu_ratio_full_over_deltas=round(ratio, 1)),
                  machine=machine())
    for r in results:
        print(f"{r['mode']:>13}: {r['feedback_per_second']:7.1f} Feedback/s acknowledged ({r['feedback_failed']} failed), "
              f"router CPU {r['router_cpu_seconds_per_second']:.3f} s/s, copy lag p50 {r['copy_lag_p50_s']} s, "
              f"p99 {r['copy_lag_p99_s']} s over {r['copy_updates']} updates")
    print(f"router CPU, full resends / deltas: {ratio:.1f}x")
    print(write_json(report, args.out))
    met = (delta["copy_lag_p99_s"] is not None and delta["copy_lag_p99_s"] <= 0.25 and ratio >= 10)
    return 0 if met or not args.check else 1
