"""The three servicers in this process: real aio gRPC servers on free ports, one event loop, no subprocess.

Beside the three-process tests, these show each service is its own `app.create(env)` plus the
common bootstrap (`RunningService`), and give a fast loop for servicer changes.
"""
from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.server import RunningService
from services.common.settings import ServerSettings
from services.router.app import create as create_router
from services.scorer.app import create as create_scorer
from services.tagger.app import create as create_tagger
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import wipe_tagrouter_keys

QUERY = "Write a Python function that reverses a linked list"


@contextlib.asynccontextmanager
async def serving(service: str, create, env: dict[str, str]):
    """One service on a free loopback port in this loop, SERVING on entry; yields its address."""
    running = RunningService(create(env), ServerSettings.from_env(service, env).with_port(0))
    await running.start()
    try:
        await asyncio.wait_for(running.warm_up, 120)
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.stop()


def in_process_env(redis_url: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "TAGROUTER_METRICS_PORT": "0", "TAGROUTER_LOG_LEVEL": "WARNING",
            "TAGROUTER_GRACE_SECONDS": "0.5"}


def test_scorer_in_process_scores_and_refuses_bad_input(redis_url):
    wipe_tagrouter_keys(redis_url)

    async def main():
        async with serving("scorer", create_scorer, in_process_env(redis_url)) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                scorer = scorer_pb2_grpc.ScorerServiceStub(channel)
                pool = await scorer.ListModels(scorer_pb2.ListModelsRequest(), timeout=10)
                names = [m.name for m in pool.models]
                reply = await scorer.Score(scorer_pb2.ScoreRequest(
                    tags=[scorer_pb2.WeightedTag(name="task:coding", weight=0.8)],
                    candidate_models=[names[0], names[0], names[1]]), timeout=10)
                assert [s.model for s in reply.scores] == names[:2]  # duplicates answered once
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await scorer.Score(scorer_pb2.ScoreRequest(candidate_models=["no-such-model"]), timeout=10)
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "unknown model 'no-such-model'; the pool is" in bad.value.details()
                # names longer than a status trailer holds: still INVALID_ARGUMENT (was RESOURCE_EXHAUSTED)
                for call in (scorer.Score(scorer_pb2.ScoreRequest(candidate_models=["m" * 20_000]), timeout=10),
                             scorer.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=["x" * 10_000]),
                                                                        model=names[0], outcome=1), timeout=10),
                             scorer.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=["task:a"]),
                                                                        model="m" * 20_000, outcome=1), timeout=10)):
                    with pytest.raises(grpc.aio.AioRpcError) as bad:
                        await call
                    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad.value.details()
                    assert len(bad.value.details()) < 1200

    asyncio.run(main())


def test_tagger_in_process_tags_and_counts_tokens():
    env = {"TAGROUTER_METRICS_PORT": "0", "TAGROUTER_LOG_LEVEL": "WARNING", "TAGROUTER_GRACE_SECONDS": "0.5"}

    async def main():
        async with serving("tagger", create_tagger, env) as address:
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await tagger_pb2_grpc.TaggerServiceStub(channel).Tag(
                    tagger_pb2.TagRequest(query=QUERY), timeout=30)
                assert reply.input_tokens > 5 and any(t.level == "task" for t in reply.tags)
                health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert health.status == health_pb2.HealthCheckResponse.SERVING

    asyncio.run(main())


def test_router_in_process_routes_through_in_process_downstreams(redis_url):
    wipe_tagrouter_keys(redis_url)
    env = in_process_env(redis_url)

    async def main():
        async with serving("tagger", create_tagger, env) as tagger, serving("scorer", create_scorer, env) as scorer:
            router_env = dict(env, TAGGER_ADDR=tagger, SCORER_ADDR=scorer)
            async with serving("router", create_router, router_env) as router:
                async with grpc.aio.insecure_channel(router) as channel:
                    stub = router_pb2_grpc.RouterServiceStub(channel)
                    reply = await stub.Route(router_pb2.RouteRequest(query=QUERY), timeout=30)
                    assert reply.model and not reply.degraded and reply.estimated_cost_usd > 0
                    with pytest.raises(grpc.aio.AioRpcError) as bad:
                        await stub.Route(router_pb2.RouteRequest(query=QUERY, cost_weight=float("nan")), timeout=10)
                    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert "cost_weight" in bad.value.details()

    asyncio.run(main())


@pytest.mark.parametrize("score_in_router", ["true", "false"])
def test_every_pool_model_is_a_valid_candidate_whichever_came_first(redis_url, score_in_router):
    """The router once checked candidates against the models its answers had named so far: after a
    Route among one model, every other model of the pool was 'unknown' until a Route among all."""
    wipe_tagrouter_keys(redis_url)
    env = in_process_env(redis_url)

    async def main():
        async with serving("tagger", create_tagger, env) as tagger, serving("scorer", create_scorer, env) as scorer:
            async with grpc.aio.insecure_channel(scorer) as channel:
                pool = await scorer_pb2_grpc.ScorerServiceStub(channel).ListModels(scorer_pb2.ListModelsRequest(),
                                                                                    timeout=10)
            names = [m.name for m in pool.models]
            router_env = dict(env, TAGGER_ADDR=tagger, SCORER_ADDR=scorer, TAGROUTER_SCORE_IN_ROUTER=score_in_router)
            async with serving("router", create_router, router_env) as router:
                async with grpc.aio.insecure_channel(router) as channel:
                    stub = router_pb2_grpc.RouterServiceStub(channel)
                    for name in (names[-1], names[0], names[1]):
                        reply = await stub.Route(router_pb2.RouteRequest(query=QUERY, candidate_models=[name]),
                                                 timeout=30)
                        assert reply.model == name and not reply.degraded
                    with pytest.raises(grpc.aio.AioRpcError) as bad:
                        await stub.Route(router_pb2.RouteRequest(query=QUERY, candidate_models=["no-such-model"]),
                                         timeout=10)
                    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert "unknown model 'no-such-model'" in bad.value.details()

    asyncio.run(main())
