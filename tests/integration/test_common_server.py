"""The common server code (services/common) with a fake scorer servicer, in this process (issue 13).

Admission control per kind of work (finding 3), undecodable requests (9) and the bearer
scheme (14), against a real aio gRPC server built by RunningService, without Redis or the model.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from services.common.server import RunningService, ServiceSpec
from services.common.settings import ServerSettings
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

SCORER = "tagrouter.scorer.v1.ScorerService"
TOKEN = "s3cret-token"


class FakeScorer(scorer_pb2_grpc.ScorerServiceServicer):
    """Score blocks while `hold` is clear; WatchWeights sends one message and stays open."""

    def __init__(self):
        self.hold = asyncio.Event()
        self.hold.set()

    async def Score(self, request, context):
        await self.hold.wait()
        return scorer_pb2.ScoreResponse()

    async def Feedback(self, request, context):
        return scorer_pb2.FeedbackResponse()

    async def LoadWeights(self, request, context):
        return scorer_pb2.LoadWeightsResponse(version="v1")

    async def WatchWeights(self, request, context):
        yield scorer_pb2.WeightsUpdate()
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def fake_scorer(**env):
    servicer = FakeScorer()
    spec = ServiceSpec(SCORER, servicer, scorer_pb2_grpc.add_ScorerServiceServicer_to_server)
    base = {"TAGROUTER_METRICS_PORT": "0", "TAGROUTER_LOG_LEVEL": "WARNING", "TAGROUTER_GRACE_SECONDS": "0.2",
            "TAGROUTER_ADMIN_TOKEN": TOKEN}
    running = RunningService(spec, ServerSettings.from_env("scorer", {**base, **env}).with_port(0))
    await running.start()
    await asyncio.wait_for(running.warm_up, 10)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield servicer, channel
    finally:
        await running.stop()


async def _health(channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SCORER), timeout=5)
    return reply.status


def test_open_streams_leave_room_for_health_unary_and_admin_calls():
    """Finding 3: streams past their cap are refused with a message naming the limit, and never
    take the room of health checks, Score or the admin RPCs."""
    async def main():
        async with fake_scorer(TAGROUTER_MAX_STREAMS="10", TAGROUTER_MAX_STREAMS_PER_PEER="6") as (_, channel):
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            streams = [stub.WatchWeights(scorer_pb2.WatchWeightsRequest()) for _ in range(6)]
            for call in streams:
                await call.read()  # open and answered
            extra = stub.WatchWeights(scorer_pb2.WatchWeightsRequest())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await extra.read()
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "TAGROUTER_MAX_STREAMS_PER_PEER" in refused.value.details()
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
            await stub.Score(scorer_pb2.ScoreRequest(), timeout=5)
            await stub.Feedback(scorer_pb2.FeedbackRequest(), timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),))
            for call in streams:  # a closed stream gives its room back
                call.cancel()
            await asyncio.sleep(0.2)
            again = stub.WatchWeights(scorer_pb2.WatchWeightsRequest())
            await again.read()
            again.cancel()

    asyncio.run(main())


def test_busy_unary_calls_leave_room_for_health_and_admin_calls():
    async def main():
        async with fake_scorer(TAGROUTER_MAX_CONCURRENT_RPCS="4") as (servicer, channel):
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            servicer.hold.clear()
            held = [asyncio.ensure_future(stub.Score(scorer_pb2.ScoreRequest(), timeout=10)) for _ in range(4)]
            await asyncio.sleep(0.3)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Score(scorer_pb2.ScoreRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "TAGROUTER_MAX_CONCURRENT_RPCS" in refused.value.details()
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
            auth = (("authorization", f"Bearer {TOKEN}"),)
            assert (await stub.LoadWeights(scorer_pb2.LoadWeightsRequest(), timeout=5, metadata=auth)).version == "v1"
            servicer.hold.set()
            await asyncio.gather(*held)
            await stub.Score(scorer_pb2.ScoreRequest(), timeout=5)

    asyncio.run(main())


def _count(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("tagrouter_rpc_requests_total",
                                     {"service": "ScorerService", "method": method, "code": code}) or 0.0


def _deep_groups(depth: int) -> bytes:
    # field 15 as a start group (wire type 3) nested `depth` times, never closed
    return bytes([(15 << 3) | 3]) * depth


@pytest.mark.parametrize("raw", [
    b"\x0a\x03\xff\xfe\xfd",  # FeedbackRequest field 1 (a string): invalid UTF-8
    b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end of the message
    _deep_groups(20_000),  # groups nested past the parser's recursion limit
], ids=["invalid-utf8", "corrupt", "deep-groups"])
def test_undecodable_requests_are_invalid_argument_counted_and_quiet(raw, caplog):
    """Finding 9: INVALID_ARGUMENT with a plain message (no protobuf internals), counted in the
    metrics, no traceback logged, for an admin RPC too (the token check never sees it)."""
    async def main():
        async with fake_scorer() as (_, channel):
            call = channel.unary_unary(f"/{SCORER}/Feedback", request_serializer=None, response_deserializer=None)
            before = _count("Feedback", "INVALID_ARGUMENT")
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await call(raw, timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad.value.details().startswith("the request is not a valid tagrouter.scorer.v1.FeedbackRequest")
            assert "DecodeError" not in bad.value.details() and "Traceback" not in bad.value.details()
            # the server counts the call as its handler ends, which may come just after the caller hears
            for _ in range(100):
                if _count("Feedback", "INVALID_ARGUMENT") == before + 1:
                    break
                await asyncio.sleep(0.02)
            assert _count("Feedback", "INVALID_ARGUMENT") == before + 1
            corrupt = b"\x0a\xff\xff\xff\xff\x0f"  # undecodable whatever the message type (a stream's too)
            watch = channel.unary_stream(f"/{SCORER}/WatchWeights", request_serializer=None,
                                         response_deserializer=None)(corrupt, timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as bad_stream:
                await watch.read()
            assert bad_stream.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_the_bearer_scheme_is_case_insensitive():
    """Finding 14: RFC 7235 schemes are case-insensitive; the token itself is compared exactly."""
    async def main():
        async with fake_scorer() as (_, channel):
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            for scheme in ("Bearer", "bearer", "BEARER"):
                md = (("authorization", f"{scheme} {TOKEN}"),)
                assert (await stub.LoadWeights(scorer_pb2.LoadWeightsRequest(), timeout=5, metadata=md)).version
            for value in (f"Bearer {TOKEN.upper()}", f"Basic {TOKEN}", TOKEN, f"Bearer{TOKEN}"):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.LoadWeights(scorer_pb2.LoadWeightsRequest(), timeout=5,
                                           metadata=(("authorization", value),))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(main())


def test_health_watch_streams_still_work_through_the_wrappers():
    """The health servicer's Watch writes with context.write (a coroutine, not a generator)."""
    async def main():
        async with fake_scorer() as (_, channel):
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SCORER))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()

    asyncio.run(main())
