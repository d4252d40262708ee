"""`tagrouter simulate`: a suite's queries streamed through a real router, one tenant per budget mode.

The local stack (tagger, scorer, router as processes on loopback, a private Redis) serves weights
fitted on the suite's train split (`pacing.serving_weights`) with tenancy on. Four tenants share
one stream: `pace`, `downgrade` and `hard` with one budget (a UTC day) of P% of what always using
the priciest model costs over the stream, each with base cost weight 0 (spend freely; pace moves
it), and `calibrated`: the fixed cost weight `tagrouter calibrate` picks on VALID for P%, with no
cap (its spend is measured against the same budget). Each Route is settled (Settle, cost_usd)
with the suite's own cost of the model chosen; a refused Route is a query not accepted.

The clock: the tenants are written with `simulated_clock` (no RPC or CLI can set it), so their
windows follow the time in their clock key, which the simulation sets before query i of n to
the window's start plus (i + 0.5) / n of a day. Production tenants follow the wall clock as before.
"""
from __future__ import annotations

import asyncio
import calendar
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from services.common.security import bearer
from services.common.tenant_store import TenantStore
from tagrouter.core import tenancy
from tagrouter.core.tenancy import Budget, Tenant
from tagrouter.offline import paired, quality_metrics
from tagrouter.offline.pacing import budget_usd, serving_weights, stream_rows
from tagrouter.offline.suite import Suite

MODES = ("pace", "downgrade", "hard", "calibrated")
WINDOW, WINDOW_SECONDS = "day", 86400
SIM_START = calendar.timegm((2001, 1, 1, 0, 0, 0))  # the simulated day (any whole UTC day)
CALL_TIMEOUT_S = 60.0
MAX_SECONDS = 3600.0  # one stream's bound


@dataclass
class Run:
    budget_pct: float
    order: str = "shuffled"
    split: str = "test"
    seed: int = 0


def _tenants(budget: float, calibrated_weight: float, tag: str) -> dict[str, tuple[Tenant, str]]:
    out = {}
    for mode in MODES:
        token = tenancy.new_token()
        fixed = mode == "calibrated"
        out[mode] = (tenancy.check(Tenant(
            id=f"sim-{mode}-{tag}", mode="hard" if fixed else mode, cost_weight=calibrated_weight if fixed else 0.0,
            quality_margin=0.0, budgets=() if fixed else (Budget(WINDOW, budget),),
            token_hashes=(tenancy.hash_token(token),), simulated_clock=True)), token)
    return out


async def stream(router: str, redis_url: str, suite: Suite, rows: np.ndarray, budget: float,
                 calibrated_weight: float, max_seconds: float = MAX_SECONDS) -> dict:
    """Route and settle every row for the four tenants; spend and accept rate per mode."""
    from tagrouter.router.v1 import router_pb2, router_pb2_grpc

    deadline = time.monotonic() + max_seconds
    accept = quality_metrics.accepted(suite.scores, suite.tie_margin)
    column = {m: i for i, m in enumerate(suite.model_names)}
    store = TenantStore(redis_url)
    tenants = _tenants(budget, calibrated_weight, uuid.uuid4().hex[:8])
    stats = {mode: {"spend_nano": 0, "accepted": 0, "refused": 0} for mode in MODES}
    hits = {mode: np.zeros(len(rows)) for mode in MODES}  # per streamed query: accepted (a refusal: 0)
    try:
        for tenant, _ in tenants.values():
            await store.put(tenant)
        async with grpc.aio.insecure_channel(router) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)

            async def one(mode: str, i: int, row: int) -> None:
                tenant, token = tenants[mode]
                try:
                    answer = await stub.Route(router_pb2.RouteRequest(query=suite.queries[row]),
                                              metadata=bearer(token), timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    stats[mode]["refused"] += 1
                    return
                j = column[answer.model]
                settled = await stub.Settle(router_pb2.SettleRequest(
                    request_id=answer.request_id, cost_usd=float(suite.costs[row, j])),
                    metadata=bearer(token), timeout=CALL_TIMEOUT_S)
                stats[mode]["spend_nano"] += tenancy.to_nano(settled.cost_usd)
                stats[mode]["accepted"] += bool(accept[row, j])
                hits[mode][i] = float(accept[row, j])

            n = len(rows)
            for i, row in enumerate(rows):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulate: the stream took over {max_seconds:.0f} s ({i} of {n} queries)")
                now = SIM_START + (i + 0.5) / n * WINDOW_SECONDS
                await store.client.mset({tenancy.clock_key(t.id): repr(now) for t, _ in tenants.values()})
                await one(MODES[0], i, int(row))  # tags the query once (the tagger caches it for the others)
                await asyncio.gather(*(one(mode, i, int(row)) for mode in MODES[1:]))
        cap = tenancy.to_nano(budget)
        return {"budget_usd": budget, "modes": {mode: {
            "spend_usd": s["spend_nano"] / tenancy.NANO,
            "spend_pct_of_budget": 100 * s["spend_nano"] / cap if cap else 0.0,
            "accept_rate": s["accepted"] / n if n else 0.0,
            "crossed_cap": s["spend_nano"] > cap,
            "refused": s["refused"]} for mode, s in stats.items()},
            "pace_against": {mode: paired_accept_rate(hits["pace"], hits[mode]) for mode in ("downgrade", "hard")}}
    finally:
        for tenant, _ in tenants.values():
            await store.delete(tenant)
        await store.close()


def paired_accept_rate(subject: np.ndarray, other: np.ndarray) -> dict:
    """Pace's accept rate minus another mode's on the same stream, with its 95% interval over paired
    bootstrap resamples of the streamed queries and the call. Each query keeps its outcome in both modes
    as it came (no mode is re-run on a resample). A paced stream's queries are not independent (each
    choice depends on the spend before it), so the interval is a guide to the noise, not a test."""
    if len(subject) == 0:
        return {"difference": 0.0, "interval": [0.0, 0.0], "call": "level"}
    counts = paired.resample_counts(len(subject))
    found = paired.summary(float(np.mean(subject - other)), counts @ (subject - other) / len(subject))
    return {"difference": found["auc_difference"], "interval": found["interval"], "call": found["call"]}


def stack_env(redis_url: str, weights_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGROUTER_")}
    for key in ("TAGROUTER_MODEL_DIR", "TAGROUTER_VOCAB_DIR"):  # the tagger the weights were fitted with
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(REDIS_URL=redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url,
               TAGROUTER_WEIGHTS_FILE=str(Path(weights_path).resolve()),
               TAGROUTER_METRICS_PORT="0", TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_TAGGER_TIMEOUT_MS="30000",
               TAGROUTER_SCORER_TIMEOUT_MS="30000", PYTHONUNBUFFERED="1")
    return env


def simulate(suite: Suite, runs: list[Run], tagger=None, weights=None, weights_path=None,
             max_seconds: float = MAX_SECONDS, log=print) -> list[dict]:
    """One stack for the suite, one stream per run; a result per run (the SIM.json object)."""
    from tagrouter.offline.calibration import calibrate
    from tagrouter.offline.prepare import configured_tagger
    from tagrouter.stack import LocalStack
    from tagrouter.stack.embedded_redis import EmbeddedRedis

    tagger = tagger or configured_tagger()
    if weights is None:
        weights, weights_path = serving_weights(suite, tagger)
    # priced as the Routes below are: the query alone (no prompt_chars)
    calibrated = {pct: calibrate(suite, weights, tagger, "valid", target_cost_pct=pct, as_sent=False)["cost_weight"]
                  for pct in sorted({r.budget_pct for r in runs})}
    out = []
    with EmbeddedRedis() as url, LocalStack(env=stack_env(url, weights_path), quiet=True) as stack:
        for run in runs:
            started = time.monotonic()
            rows = stream_rows(suite, run.split, run.order, weights, run.seed)
            budget = budget_usd(suite, rows, weights, run.budget_pct)
            result = asyncio.run(stream(stack.router, url, suite, rows, budget, calibrated[run.budget_pct],
                                        max_seconds))
            out.append({**result, "suite": suite.name, "split": run.split, "order": run.order,
                        "budget_pct": run.budget_pct, "queries": int(len(rows)),
                        "calibrated_cost_weight": calibrated[run.budget_pct],
                        "vocabulary": tagger.vocabulary.without_groups().version})
            log(f"{suite.name} {run.split} {run.order} {run.budget_pct:g}%: {len(rows)} queries in "
                f"{time.monotonic() - started:.0f} s")
    return out


def format_result(result: dict) -> str:
    lines = [f"{result['suite']} ({result['split']}, {result['queries']} queries, {result['order']}): budget "
             f"{result['budget_usd']:.6g} USD = {result['budget_pct']:g}% of always the priciest model; calibrated "
             f"cost weight {result['calibrated_cost_weight']:.4g}",
             f"{'mode':<11} {'spend USD':>12} {'% budget':>9} {'accept':>7} {'refused':>7} crossed"]
    for mode, m in result["modes"].items():
        lines.append(f"{mode:<11} {m['spend_usd']:>12.6g} {m['spend_pct_of_budget']:>9.1f} {m['accept_rate']:>7.4f} "
                     f"{m['refused']:>7} {'YES' if m['crossed_cap'] else 'no'}")
    return "\n".join(lines)
