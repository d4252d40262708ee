"""Request loops: the in-process encoder, one call at a time, and many in flight.

Every loop is bounded in count (the requests it is given) and in time (a budget in seconds),
and the gRPC ones only ever target loopback addresses.
"""
from __future__ import annotations

import asyncio
import time

ENCODER_BATCH = 32  # the micro-batcher's cap: the encoder's batched throughput uses the same size
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"tagrouter bench only targets loopback addresses, not {address}")


def timed_calls(fn, items: list, budget_s: float) -> tuple[list[float], list]:
    """fn(item) for each item in turn, one at a time: (seconds of each, results); stops after budget_s."""
    out, results, deadline = [], [], time.monotonic() + budget_s
    for item in items:
        t0 = time.perf_counter()
        results.append(fn(item))
        out.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    return out, results


def encoder_latencies(encoder, queries: list[str], budget_s: float) -> list[float]:
    """Batch-1 latency of the raw encoder (tokenise + one session call), one query at a time."""
    return timed_calls(lambda q: encoder.encode([q], heads=False), queries, budget_s)[0]


def encoder_batch_qps(encoder, queries: list[str]) -> tuple[int, float]:
    """(queries, seconds) of batched encoding: sorted by length, batches of ENCODER_BATCH."""
    t0 = time.perf_counter()
    encoder.embed(queries, batch_size=ENCODER_BATCH)
    return len(queries), time.perf_counter() - t0


def sequential_latencies(call, requests: list, budget_s: float) -> tuple[list[float], list]:
    """Latency of each call, one in flight (a blocking client: the least client overhead)."""
    return timed_calls(lambda request: call(request, timeout=10), requests, budget_s)


async def in_flight(send, requests: list, concurrency: int, budget_s: float) -> float:
    """`await send(request)` for each request, `concurrency` at a time, until they or budget_s run out.

    Returns the wall-clock seconds it took.
    """
    it = iter(requests)
    deadline = time.monotonic() + budget_s

    async def worker() -> None:
        for request in it:
            if time.monotonic() > deadline:
                return
            await send(request)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def _concurrent(address: str, queries: list[str], concurrency: int, budget_s: float) -> dict:
    import grpc

    from tagrouter.router.v1 import router_pb2, router_pb2_grpc

    out = {"latencies": [], "wall_s": 0.0, "errors": 0, "degraded": 0}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        await stub.Route(router_pb2.RouteRequest(query="connection warm-up"), timeout=10)

        async def send(request) -> None:
            t0 = time.perf_counter()
            try:
                reply = await stub.Route(request, timeout=10)
            except grpc.aio.AioRpcError:
                out["errors"] += 1
                return
            out["latencies"].append(time.perf_counter() - t0)
            out["degraded"] += reply.degraded

        requests = [router_pb2.RouteRequest(query=q) for q in queries]
        out["wall_s"] = await in_flight(send, requests, concurrency, budget_s)
    return out


def concurrent_route(address: str, queries: list[str], concurrency: int, budget_s: float) -> dict:
    """Route with `concurrency` calls in flight from one asyncio client (bounded count and time)."""
    check_loopback(address)
    return asyncio.run(_concurrent(address, queries, concurrency, budget_s))
