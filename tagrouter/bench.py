"""`tagrouter bench`: the encoder floor, Tag, Score and Route latency and throughput, in one run.

Routing is paid on every LLM call, so the figure that matters is how far `Route` is from the
floor: one forward pass of the int8 encoder, in this process, one query at a time, back to
back. Both are measured in the same run, alternating in rounds (encoder, then Tag, Score and
Route, then the encoder again), so a machine whose background load drifts (a shared 2-core
box) moves both sides of each ratio together. Beside the floor, the encoder is also timed
interleaved query by query with the RPCs: on a shared machine it runs slower when other
processes ran just before it, as a service's encoder always does (context for the ratios).

Every measured query is distinct (a real prompt plus a short run-unique marker): the tagger's
exact-match cache misses on all of them, so the figures are the uncached path. Cache hits are
measured separately (`route.c1_cache_hit`) by replaying queries the stack has already seen.

Request loops are bounded in count and in time, and only ever target loopback addresses.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "raw"

# Token windows of the two query sets, before the run marker (about 6 tokens) is added.
SHORT_TOKENS = (14, 28)
LONG_TOKENS = (340, 460)
CONCURRENCY = (8, 32)
ENCODER_BATCH = 32  # the micro-batcher's cap: the encoder's batched throughput uses the same size

# Targets of issue 5 on the 2-core reference machine (ratios, so they travel across machines).
TARGETS = {
    "short": {"route_p50_over_encoder_p50": ("max", 2.0), "route_p99_over_encoder_p50": ("max", 3.0),
              "route_c32_qps_over_encoder_batch_qps": ("min", 0.5)},
    "long": {"route_p50_over_encoder_p50": ("max", 1.5)},
}

# A fallback when ../shared is absent, so the bench runs anywhere: short real-looking prompts;
# long queries are made by joining them.
BUILTIN_PROMPTS = [
    "Write a Python function that reverses a linked list and explain its time complexity.",
    "What are the main differences between Python and JavaScript programming languages?",
    "How can I improve my time management skills while working from home with kids?",
    "Explain the difference between a virus and a bacterium in simple terms for a child.",
    "Give me three ideas for a healthy vegetarian dinner that takes under thirty minutes.",
    "Solve for x: 3x + 7 = 22, and show every step of the working clearly.",
    "Summarise the causes of the First World War in one short paragraph please.",
    "Write a haiku about autumn leaves falling on a quiet mountain lake at dawn.",
    "What is the capital of Australia, and why was it chosen over Sydney and Melbourne?",
    "Translate 'Where is the nearest train station?' into French, German and Spanish.",
    "Draft a polite email asking my landlord to fix the heating in my apartment this week.",
    "Explain how public key cryptography works, with an example using small prime numbers.",
    "Which sorting algorithm is best for nearly sorted data, and why does it perform well?",
    "Write a SQL query that returns the ten customers with the highest total order value.",
    "What are some good strategies for learning a new language as an adult beginner?",
    "Describe the water cycle and the role the sun plays in driving each of its stages.",
]


@dataclass
class Stack:
    """Addresses of the services under test (tagger and scorer may be unknown with --router)."""

    router: str
    tagger: str | None = None
    scorer: str | None = None
    processes: list = field(default_factory=list)
    router_metrics: str | None = None  # the router's /metrics URL, when the bench started it


def route_phase_totals(url: str | None) -> dict[str, tuple[float, float]] | None:
    """The router's Route phase histograms (tag, score, decide): phase -> (seconds summed, count)."""
    if not url:
        return None
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "tagrouter_route_phase_latency_seconds":
            for sample in family.samples:
                phase = sample.labels.get("phase")
                if sample.name.endswith("_sum"):
                    totals.setdefault(phase, [0.0, 0.0])[0] = sample.value
                elif sample.name.endswith("_count"):
                    totals.setdefault(phase, [0.0, 0.0])[1] = sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def phase_means_ms(before, after) -> dict | None:
    """Mean milliseconds of each Route phase between two scrapes, as the router saw them."""
    if not before or not after:
        return None
    out = {}
    for phase, (total, count) in after.items():
        t0, c0 = before.get(phase, (0.0, 0.0))
        if count > c0:
            out[f"{phase}_mean_ms"] = round((total - t0) / (count - c0) * 1000, 3)
    return out


# --- queries -------------------------------------------------------------------------------
def _read_jsonl(path: Path, key) -> list[str]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            value = key(json.loads(line))
            if isinstance(value, str) and value.strip():
                out.append(value)
    return out


def load_prompts(shared: Path) -> tuple[list[str], str]:
    """Real prompts from ../shared (AlpacaEval, Vicuna, Arena-Hard), else the built-in set."""
    prompts = (_read_jsonl(shared / "alpaca_eval" / "prompts.jsonl", lambda d: d.get("instruction"))
               + _read_jsonl(shared / "vicuna_bench" / "vicuna_bench_question.jsonl", lambda d: (d.get("turns") or [None])[0])
               + [p for name in ("arena-hard-v0.1_question.jsonl", "arena-hard-v2.0_question.jsonl")
                  for p in _read_jsonl(shared / "arena_hard" / name, lambda d: d.get("prompt"))])
    if len(prompts) >= 100:
        return list(dict.fromkeys(prompts)), f"AlpacaEval, Vicuna and Arena-Hard prompts from {shared}"
    return list(BUILTIN_PROMPTS), "the built-in prompts (../shared is absent)"


def query_sets(prompts: list[str], count_tokens) -> dict[str, list[str]]:
    """Short (about 25 tokens) and long (about 400 tokens) base queries, from real prompts.

    Long ones are real prompts of that length, topped up by joining shorter prompts.
    """
    counts = [count_tokens(p) for p in prompts]
    short = [p for p, n in zip(prompts, counts) if SHORT_TOKENS[0] <= n <= SHORT_TOKENS[1]]
    long = [p for p, n in zip(prompts, counts) if LONG_TOKENS[0] <= n <= LONG_TOKENS[1]]
    if not short:
        short = sorted(prompts, key=lambda p: abs(count_tokens(p) - 20))[:16]
    # Top up with joined prompts (medium ones first) until there are at least 64 long queries.
    pool = [p for p, n in zip(prompts, counts) if 20 <= n < LONG_TOKENS[0]] or prompts
    start = 0
    while len(long) < 64:
        joined, n = [], 0
        while n < (LONG_TOKENS[0] + LONG_TOKENS[1]) // 2:
            piece = pool[start % len(pool)]
            start += 1
            joined.append(piece)
            n += count_tokens(piece)
        long.append("\n\n".join(joined))
    return {"short": short, "long": long}


class Queries:
    """Distinct queries on demand: base prompts in turn, each with a run-unique marker."""

    def __init__(self, base: list[str], run_id: str):
        self.base = base
        self.run_id = run_id
        self.issued = 0

    def take(self, n: int) -> list[str]:
        out = [f"{self.base[(self.issued + i) % len(self.base)]} [{self.run_id}{self.issued + i}]" for i in range(n)]
        self.issued += n
        return out

    def peek(self, n: int) -> list[str]:
        """Queries like the ones `take` gives, without using any up (for statistics)."""
        return [f"{self.base[i % len(self.base)]} [{self.run_id}{i}]" for i in range(n)]


# --- statistics ----------------------------------------------------------------------------
def latency_summary(seconds: list[float]) -> dict:
    """p50/p90/p99/mean in milliseconds, and the sample count."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": len(ms), "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3),
            "p99_ms": round(float(p99), 3), "mean_ms": round(float(ms.mean()), 3)}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# --- in-process encoder --------------------------------------------------------------------
def encoder_latencies(encoder, queries: list[str], budget_s: float) -> list[float]:
    """Batch-1 latency of the raw encoder (tokenise + one session call), one query at a time."""
    out, deadline = [], time.monotonic() + budget_s
    for q in queries:
        t0 = time.perf_counter()
        encoder.encode([q])
        out.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    return out


def encoder_batch_qps(encoder, queries: list[str]) -> tuple[int, float]:
    """(queries, seconds) of batched encoding: sorted by length, batches of ENCODER_BATCH."""
    t0 = time.perf_counter()
    encoder.embed(queries, batch_size=ENCODER_BATCH)
    return len(queries), time.perf_counter() - t0


# --- gRPC load -----------------------------------------------------------------------------
def _check_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"tagrouter bench only targets loopback addresses, not {address}")


def sequential_latencies(call, requests: list, budget_s: float) -> tuple[list[float], list]:
    """Latency of each call, one in flight (a blocking client: the least client overhead)."""
    out, replies, deadline = [], [], time.monotonic() + budget_s
    for request in requests:
        t0 = time.perf_counter()
        replies.append(call(request, timeout=10))
        out.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    return out, replies


async def _concurrent(address: str, queries: list[str], concurrency: int, budget_s: float) -> dict:
    import grpc

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc

    requests = [router_pb2.RouteRequest(query=q) for q in queries]
    latencies: list[float] = []
    errors, degraded = 0, 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        await stub.Route(router_pb2.RouteRequest(query="connection warm-up"), timeout=10)
        it = iter(requests)
        deadline = time.monotonic() + budget_s

        async def worker() -> None:
            nonlocal errors, degraded
            for request in it:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    reply = await stub.Route(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                degraded += reply.degraded

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"latencies": latencies, "wall_s": wall, "errors": errors, "degraded": degraded}


def concurrent_route(address: str, queries: list[str], concurrency: int, budget_s: float) -> dict:
    """Route with `concurrency` calls in flight from one asyncio client (bounded count and time)."""
    return asyncio.run(_concurrent(address, queries, concurrency, budget_s))


# --- the stack under test ------------------------------------------------------------------
@contextlib.contextmanager
def started_stack(log_dir: Path, env_extra: dict[str, str] | None = None):
    """Tagger, scorer and router as three processes on loopback (like production), plus Redis."""
    from tagrouter.stack.embedded_redis import EmbeddedRedis, free_port
    from tagrouter.stack.health import wait_serving

    with contextlib.ExitStack() as stack:
        env = {k: v for k, v in os.environ.items()}
        env.update(TAGROUTER_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", TAGROUTER_HOST="127.0.0.1", **(env_extra or {}))
        if not env.get("REDIS_URL", "").strip():
            env["REDIS_URL"] = stack.enter_context(EmbeddedRedis())
        ports = {name: free_port() for name in ("tagger", "scorer", "router")}
        env.update(TAGGER_ADDR=f"127.0.0.1:{ports['tagger']}", SCORER_ADDR=f"127.0.0.1:{ports['scorer']}")
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = []

        def stop_all() -> None:
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

        stack.callback(stop_all)
        metrics_ports = {name: free_port() for name in ports}  # one each: they would collide on the default
        for name in ("tagger", "scorer", "router"):
            log = stack.enter_context(open(log_dir / f"{name}.log", "w"))
            procs.append(subprocess.Popen([sys.executable, "-m", "tagrouter.cli", "serve", name, "--port", str(ports[name])],
                                          env=dict(env, TAGROUTER_METRICS_PORT=str(metrics_ports[name])), cwd=REPO_ROOT,
                                          stdout=log, stderr=subprocess.STDOUT))
        wait_serving(f"127.0.0.1:{ports['router']}", "tagrouter.router.v1.RouterService", 120, tuple(procs))
        yield Stack(router=f"127.0.0.1:{ports['router']}", tagger=env["TAGGER_ADDR"], scorer=env["SCORER_ADDR"],
                    processes=procs, router_metrics=f"http://127.0.0.1:{metrics_ports['router']}/metrics")


# --- one query length ----------------------------------------------------------------------
@dataclass
class Plan:
    """How much to measure: per round and per phase, in requests and seconds."""

    rounds: int = 3
    c1_requests: int = 150
    load_requests: int = 600
    batch_queries: int = 256
    phase_seconds: float = 10.0
    warmup: int = 20

    def scaled(self, factor: float) -> "Plan":
        return Plan(self.rounds, max(8, int(self.c1_requests * factor)), max(16, int(self.load_requests * factor)),
                    max(ENCODER_BATCH, int(self.batch_queries * factor)), self.phase_seconds, self.warmup)


def bench_length(name: str, encoder, stack: Stack, queries: Queries, plan: Plan, say) -> dict:
    import grpc

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc
    from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
    from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

    channels = [grpc.insecure_channel(stack.router)]
    route = router_pb2_grpc.RouterServiceStub(channels[0]).Route
    tag = score = None
    if stack.tagger:
        channels.append(grpc.insecure_channel(stack.tagger))
        tag = tagger_pb2_grpc.TaggerServiceStub(channels[-1]).Tag
    if stack.scorer:
        channels.append(grpc.insecure_channel(stack.scorer))
        score = scorer_pb2_grpc.ScorerServiceStub(channels[-1]).Score

    enc, back_to_back, tag_lat, score_lat, route_lat, seen = [], [], [], [], [], []
    degraded = 0
    try:
        # Warm-up: the first calls pay for connections, caches and allocator growth.
        warm = queries.take(plan.warmup)
        encoder_latencies(encoder, warm, plan.phase_seconds)
        sequential_latencies(route, [router_pb2.RouteRequest(query=q) for q in warm], plan.phase_seconds)
        phases = []
        for r in range(plan.rounds):
            batch = queries.take(plan.c1_requests)
            # The floor, measured as the issue and docs/PERFORMANCE.md define it: the encoder
            # alone, one query at a time, back to back.
            back_to_back += encoder_latencies(encoder, batch, plan.phase_seconds)
            before = route_phase_totals(stack.router_metrics)
            deadline = time.monotonic() + plan.phase_seconds
            for query, tag_query in zip(batch, queries.take(len(batch))):
                # One query at a time through each in turn: the encoder in this process again
                # (interleaved: context), Tag and Score directly, then Route, so load drifting on
                # a shared machine hits these figures alike.
                t0 = time.perf_counter()
                encoder.encode([query])
                enc.append(time.perf_counter() - t0)
                if tag is not None:
                    t0 = time.perf_counter()
                    tagged = tag(tagger_pb2.TagRequest(query=tag_query), timeout=10)
                    tag_lat.append(time.perf_counter() - t0)
                    if score is not None:
                        request = scorer_pb2.ScoreRequest(
                            tags=[scorer_pb2.WeightedTag(name=t.name, weight=t.score) for t in tagged.tags])
                        t0 = time.perf_counter()
                        score(request, timeout=10)
                        score_lat.append(time.perf_counter() - t0)
                request = router_pb2.RouteRequest(query=query)
                t0 = time.perf_counter()
                reply = route(request, timeout=10)
                route_lat.append(time.perf_counter() - t0)
                degraded += reply.degraded
                seen.append(query)
                if time.monotonic() > deadline:
                    break
            phases.append(phase_means_ms(before, route_phase_totals(stack.router_metrics)))
            say(f"  {name} round {r + 1}/{plan.rounds}: encoder p50 {latency_summary(enc)['p50_ms']} ms, "
                f"Route c1 p50 {latency_summary(route_lat)['p50_ms']} ms")
        # Cache hits: the same queries again (the tagger has seen each once).
        hits, _ = sequential_latencies(route, [router_pb2.RouteRequest(query=q) for q in seen], plan.phase_seconds)
    finally:
        for ch in channels:
            ch.close()

    batch_n = batch_s = 0.0
    loads = {c: {"latencies": [], "wall_s": 0.0, "errors": 0, "degraded": 0} for c in CONCURRENCY}
    for r in range(plan.rounds):
        n, s = encoder_batch_qps(encoder, queries.take(plan.batch_queries))
        batch_n, batch_s = batch_n + n, batch_s + s
        for c in CONCURRENCY:
            result = concurrent_route(stack.router, queries.take(plan.load_requests), c, plan.phase_seconds)
            agg = loads[c]
            agg["latencies"] += result["latencies"]
            agg["wall_s"] += result["wall_s"]
            agg["errors"] += result["errors"]
            agg["degraded"] += result["degraded"]
        say(f"  {name} round {r + 1}/{plan.rounds}: encoder batched {batch_n / batch_s:.0f} q/s, " + ", ".join(
            f"Route c{c} {(len(loads[c]['latencies']) - loads[c]['degraded']) / loads[c]['wall_s']:.0f} q/s "
            f"({loads[c]['degraded']} degraded)" for c in CONCURRENCY))

    encoder_c1 = latency_summary(back_to_back)
    result = {
        "queries": {"base_prompts": len(queries.base), "measured": queries.issued,
                    "tokens_p50": int(np.median([encoder.count_tokens(q) for q in queries.peek(64)]))},
        "encoder": {**encoder_c1, "batch_qps": round(batch_n / batch_s, 1), "batch_size": ENCODER_BATCH,
                    "threads": encoder.session.get_session_options().intra_op_num_threads,
                    "measured": "one query at a time, back to back, in rounds alternating with the services",
                    # Context, not the floor the ratios use: the encoder interleaved query by query
                    # with Tag, Score and Route, its caches and clocks as cold as a service's.
                    "interleaved": latency_summary(enc)},
        "tag": {"c1": latency_summary(tag_lat)} if tag else None,
        "score": {"c1": latency_summary(score_lat)} if score else None,
        "route": {"c1": {**latency_summary(route_lat), "degraded": degraded,
                         # Where a c1 Route's time goes, as the router measured it (its /metrics).
                         "router_phases": _mean_of(phases)},
                  "c1_cache_hit": latency_summary(hits)},
    }
    for c in CONCURRENCY:
        agg = loads[c]
        # A degraded answer (a downstream missed its deadline) is not a routed query: not counted.
        ok = len(agg["latencies"]) - agg["degraded"]
        result["route"][f"c{c}"] = {"qps": round(ok / agg["wall_s"], 1) if agg["wall_s"] else None,
                                    **latency_summary(agg["latencies"]), "errors": agg["errors"],
                                    "degraded": agg["degraded"]}
    route_c1 = result["route"]["c1"]
    result["ratios"] = {
        "route_p50_over_encoder_p50": ratio(route_c1.get("p50_ms"), encoder_c1.get("p50_ms")),
        "route_p99_over_encoder_p50": ratio(route_c1.get("p99_ms"), encoder_c1.get("p50_ms")),
        "route_c32_qps_over_encoder_batch_qps": ratio(result["route"]["c32"]["qps"], result["encoder"]["batch_qps"]),
    }
    cold = result["encoder"]["interleaved"].get("p50_ms")
    result["ratios_vs_interleaved_encoder"] = {
        "route_p50_over_encoder_p50": ratio(route_c1.get("p50_ms"), cold),
        "route_p99_over_encoder_p50": ratio(route_c1.get("p99_ms"), cold),
    }
    return result


# --- ghz scenarios -------------------------------------------------------------------------
# The call-data templates of ghz that the scenarios in bench/ghz use (ghz renders Go templates).
GHZ_TEMPLATES = {
    "{{.RequestNumber}}": lambda n, now: str(n),
    "{{.TimestampUnix}}": lambda n, now: str(int(now)),
    "{{.TimestampUnixMilli}}": lambda n, now: str(int(now * 1e3)),
    "{{.TimestampUnixNano}}": lambda n, now: str(int(now * 1e9)),
}


def load_ghz_config(path: Path) -> dict:
    """A ghz configuration file (JSON or TOML), as a dict."""
    import tomllib

    text = Path(path).read_text()
    return tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)


def ghz_method(call: str):
    """The method descriptor a ghz `call` names ('pkg.Service.Method' or 'pkg.Service/Method')."""
    from google.protobuf import descriptor_pool

    import tagrouter.router.v1.router_pb2  # noqa: F401 - registers the descriptors
    import tagrouter.scorer.v1.scorer_pb2  # noqa: F401
    import tagrouter.tagger.v1.tagger_pb2  # noqa: F401

    service, _, method = call.replace("/", ".").rpartition(".")
    return descriptor_pool.Default().FindServiceByName(service).FindMethodByName(method)


def render_ghz_data(data, number: int, now: float):
    """ghz call data with its templates filled in for request `number`."""
    if isinstance(data, str):
        for template, value in GHZ_TEMPLATES.items():
            if template in data:
                data = data.replace(template, value(number, now))
        if "{{" in data:
            raise ValueError(f"unsupported ghz template in {data!r}")
        return data
    if isinstance(data, list):
        return [render_ghz_data(x, number, now) for x in data]
    if isinstance(data, dict):
        return {k: render_ghz_data(v, number, now) for k, v in data.items()}
    return data


def ghz_requests(config: dict, count: int) -> list:
    """The request messages a ghz run of `config` sends: data objects round-robin, templates filled."""
    from google.protobuf import json_format, message_factory

    method = ghz_method(config["call"])
    request_class = message_factory.GetMessageClass(method.input_type)
    data = config.get("data", {})
    items = data if isinstance(data, list) else [data]
    now = time.time()
    return [json_format.ParseDict(render_ghz_data(items[i % len(items)], i, now), request_class()) for i in range(count)]


def _duration_s(text: str | None, default: float) -> float:
    if not text:
        return default
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {text!r}")


async def _run_ghz(config: dict, address: str) -> dict:
    import grpc
    from google.protobuf import message_factory

    method = ghz_method(config["call"])
    response_class = message_factory.GetMessageClass(method.output_type)
    total, concurrency = int(config.get("total", 200)), int(config.get("concurrency", 50))
    budget, timeout = _duration_s(config.get("max-duration"), 60.0), _duration_s(config.get("timeout"), 20.0)
    requests = ghz_requests(config, total)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    degraded = 0
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{method.containing_service.full_name}/{method.name}",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_class.FromString)
        it = iter(requests)
        deadline = time.monotonic() + budget

        async def worker() -> None:
            nonlocal degraded
            for request in it:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    reply = await call(request, timeout=timeout)
                    code = "OK"
                    degraded += bool(getattr(reply, "degraded", False))
                except grpc.aio.AioRpcError as err:
                    code = err.code().name
                latencies.append(time.perf_counter() - t0)
                statuses[code] = statuses.get(code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"name": config.get("name", ""), "call": config["call"], "count": len(latencies), "total_s": round(wall, 3),
            "rps": round(len(latencies) / wall, 1) if wall else None, **latency_summary(latencies),
            "status_distribution": statuses, "degraded": degraded}


def run_ghz_scenario(path: Path, address: str, total: int | None = None) -> dict:
    """Runs one bench/ghz scenario the way ghz would (total, concurrency, max-duration, data round-robin).

    `total` lowers the file's request count (a smoke run in CI); the calls and data stay the file's.
    """
    _check_loopback(address)
    config = load_ghz_config(path)
    if total:
        config["total"] = min(int(config.get("total", 200)), total)
        config["concurrency"] = min(int(config.get("concurrency", 50)), config["total"])
    return asyncio.run(_run_ghz(config, address))


def _mean_of(dicts: list) -> dict | None:
    dicts = [d for d in dicts if d]
    if not dicts:
        return None
    return {k: round(float(np.mean([d[k] for d in dicts if k in d])), 3) for k in dicts[0]}


# --- the run -------------------------------------------------------------------------------
def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("tagrouter", "grpcio", "protobuf", "onnxruntime", "tokenizers", "numpy", "redis", "hiredis"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine() -> dict:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": cores, "cpu_count": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def check_targets(results: dict) -> dict:
    """Each target of the issue: the measured ratio, the bound, and whether it is met."""
    out = {}
    for length, targets in TARGETS.items():
        if length not in results:
            continue
        for key, (kind, bound) in targets.items():
            value = results[length]["ratios"].get(key)
            met = value is not None and (value <= bound if kind == "max" else value >= bound)
            out[f"{length}.{key}"] = {"value": value, kind: bound, "met": met}
    return out


def run_ghz(args) -> int:
    """`tagrouter bench --ghz-config FILE...`: the ghz scenarios through the Python client."""
    with contextlib.ExitStack() as stack:
        if args.router:
            address = args.router
            _check_loopback(address)
        else:
            address = stack.enter_context(started_stack(Path(tempfile.mkdtemp(prefix="tagrouter-bench-")))).router
        results = [dict(config=str(path), **run_ghz_scenario(path, address, args.ghz_total)) for path in args.ghz_config]
    text = json.dumps({"ghz_scenarios": results, "machine": machine(), "versions": versions()}, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 1 if any(set(r["status_distribution"]) - {"OK"} for r in results) else 0


def run(args) -> int:
    from services.common.settings import TaggerSettings

    if args.ghz_config:
        return run_ghz(args)
    args.out = args.out or Path("build/BENCH.json")
    from tagrouter.core.encoder import Encoder

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    settings = TaggerSettings.from_env()
    encoder = Encoder(settings.model_dir, settings.intra_op_threads)
    prompts, source = load_prompts(args.shared or DEFAULT_SHARED)
    bases = query_sets(prompts, encoder.count_tokens)
    run_id = secrets.token_hex(2)
    plan = Plan(rounds=args.rounds, phase_seconds=args.phase_seconds).scaled(args.scale)
    doc = {"tagrouter_bench": 1, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
           "versions": versions(), "encoder_threads": settings.intra_op_threads,
           "queries_source": source,
           "tag_cache": ("misses: every measured query is distinct (a real prompt plus a run-unique marker); "
                         "route.c1_cache_hit replays queries the tagger has already seen"),
           "plan": plan.__dict__}
    with contextlib.ExitStack() as stack:
        if args.router:
            for addr in filter(None, (args.router, args.tagger, args.scorer)):
                _check_loopback(addr)
            target = Stack(router=args.router, tagger=args.tagger, scorer=args.scorer)
            doc["stack"] = {"started_by_bench": False, "router": args.router}
        else:
            say("starting tagger, scorer and router (three processes) and Redis ...")
            target = stack.enter_context(started_stack(Path(tempfile.mkdtemp(prefix="tagrouter-bench-"))))
            doc["stack"] = {"started_by_bench": True, "processes": ["tagger", "scorer", "router", "redis-server"]}
        for length in args.lengths:
            say(f"{length} queries:")
            scaled = plan if length == "short" else plan.scaled(0.25)
            doc[length] = bench_length(length, encoder, target, Queries(bases[length], f"{run_id}{length[0]}"),
                                       scaled, say)
    doc["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["targets"] = check_targets(doc)
    doc["all_targets_met"] = all(t["met"] for t in doc["targets"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"wrote {args.out}")
    for key, t in doc["targets"].items():
        bound = f"<= {t['max']}" if "max" in t else f">= {t['min']}"
        say(f"  {key}: {t['value']} (target {bound}) {'met' if t['met'] else 'NOT MET'}")
    return 1 if args.check and not doc["all_targets_met"] else 0
