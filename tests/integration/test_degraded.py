"""Route keeps answering, flagged degraded, when a part is down; it recovers by itself."""
import time

import grpc
import pytest

from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import Process, running_stack, service_env, wait_serving

QUERY = "Write a Python function that reverses a linked list"


def route(address, timeout=2.0, query=QUERY, **kw):
    with grpc.insecure_channel(address) as channel:
        return router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=query, **kw),
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
    """The router cuts its Tag call to the caller's remaining time: with the tagger busy for
    seconds and its own Tag timeout at 5 s, a Route with a 1 s deadline has given up on the
    tagger by then (the router's degraded counter says so) instead of waiting 5 s."""
    import re
    import urllib.request

    from tagrouter.stack.embedded_redis import free_port
    from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

    metrics_port = free_port()
    with running_stack(redis_url) as procs:
        router = Process("router", service_env(redis_url, TAGROUTER_METRICS_PORT=str(metrics_port)),
                         "--tagger-addr", procs["tagger"].address, "--scorer-addr", procs["scorer"].address)
        try:
            wait_serving(router.address)
            with pytest.raises(grpc.RpcError) as err:  # a hopeless deadline: refused at once
                route(router.address, timeout=0.0001)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

            def given_up() -> float:
                """The router's count of Route calls that gave up on Tag at their deadline."""
                text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
                found = re.search(r'tagrouter_route_degraded_total\{reason="tagger_deadline_exceeded"\} (\S+)', text)
                return float(found.group(1)) if found else 0.0

            # the hopeless call is refused, never counted against the tagger (the client gives up
            # locally: let the router finish with it first)
            time.sleep(0.5)
            before = given_up()
            assert before == 0.0, "a hopeless deadline was blamed on the tagger"
            with grpc.insecure_channel(procs["tagger"].address) as channel:
                # seconds of encoder work, in batches within the characters limit (MAX_BATCH_CHARS), 252
                # long queries in all (the encoder's queue of 256 still takes the Route's query); the
                # cancel below drops what is still queued
                busy_batches = [tagger_pb2_grpc.TaggerServiceStub(channel).TagBatch.future(tagger_pb2.TagBatchRequest(
                    requests=[tagger_pb2.TagRequest(query=f"{b} {i} " + "a long question about routing " * 60)
                              for i in range(84)]), timeout=60) for b in range(3)]
                time.sleep(0.2)
                start = time.monotonic()
                try:
                    # a query the tagger has not cached (the one above may have reached it)
                    reply = route(router.address, timeout=1.0, query="Explain how a B-tree splits a full node")
                    assert reply.degraded and "tagger unavailable (DEADLINE_EXCEEDED)" in reply.degraded_reason
                except grpc.RpcError as late:  # a very late answer still shows the router gave up in time below
                    assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                # what the check needs: the tagger still busy when the Route's deadline had passed
                busy_past_deadline = not all(b.done() for b in busy_batches)
                time.sleep(max(0.0, start + 1.5 - time.monotonic()))
                after = given_up()
                assert busy_past_deadline, "the tagger was not busy until the Route's deadline"
                for b in busy_batches:
                    b.cancel()
            assert after - before == 1.0, "the router still waited for Tag past the caller's deadline"
            assert not route(router.address, timeout=10).degraded
        finally:
            router.stop()
