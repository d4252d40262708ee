"""Route keeps answering, flagged degraded, when a part is down; it recovers by itself."""
import time

import grpc
import pytest

from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import Process, running_stack, service_env, wait_serving

QUERY = "Write a Python function that reverses a linked list"


def route(address, timeout=2.0, **kw):
    with grpc.insecure_channel(address) as channel:
        return router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=QUERY, **kw),
                                                                 timeout=timeout)


def test_router_alone_answers_degraded_within_its_deadline(redis_url):
    router = Process("router", service_env(redis_url), "--tagger-addr", "127.0.0.1:1", "--scorer-addr", "127.0.0.1:1")
    try:
        deadline = time.monotonic() + 20
        while True:  # the port opens before the router can answer; it is never SERVING
            try:
                start = time.monotonic()
                reply = route(router.address, timeout=1.0)
                elapsed = time.monotonic() - start
                break
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert elapsed < 1.0
        assert reply.degraded and reply.model == "gpt4_1106_preview"
        assert "tagger unavailable" in reply.degraded_reason and "scorer unavailable" in reply.degraded_reason
    finally:
        assert router.stop() == 0


def test_scorer_down_degrades_to_the_default_model_then_recovers(redis_url, clean_redis):
    with running_stack(redis_url) as procs:
        healthy = route(procs["router"].address)
        assert not healthy.degraded
        procs["scorer"].stop()
        start = time.monotonic()
        reply = route(procs["router"].address, timeout=1.0)
        assert time.monotonic() - start < 1.0
        assert reply.degraded and "scorer unavailable" in reply.degraded_reason
        assert reply.model == "gpt4_1106_preview"
        assert reply.tags  # the tagger still answered
        assert reply.estimated_cost_usd > 0  # priced from what the router last heard
        scorer = Process("scorer", service_env(redis_url), port=procs["scorer"].port)
        procs["scorer"] = scorer
        wait_serving(scorer.address)
        deadline = time.monotonic() + 10
        while route(procs["router"].address).degraded:
            assert time.monotonic() < deadline, "the router did not recover by itself"
            time.sleep(0.1)


def test_tagger_down_routes_on_the_prior(redis_url, clean_redis):
    with running_stack(redis_url) as procs:
        procs["tagger"].stop()
        reply = route(procs["router"].address)
        assert reply.degraded and "tagger unavailable" in reply.degraded_reason
        assert not reply.tags and len(reply.scores) == 7  # the scorer decided on its per-model prior
        assert reply.input_tokens > 0


def test_client_deadline_is_propagated(redis_url, clean_redis):
    with running_stack(redis_url) as procs:
        with pytest.raises(grpc.RpcError) as err:
            route(procs["router"].address, timeout=0.0005)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert not route(procs["router"].address).degraded
