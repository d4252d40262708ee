"""Sticky sessions in Route: real routers sharing one real Redis, the real tagger and scorer.

The margin is TAGROUTER_SESSION_MARGIN; the tests find, through Routes without a session, cost
knobs at which the cheaper model wins by less than the margin and by more, then hold a
conversation across them.
"""
from __future__ import annotations

import contextlib

import grpc
import pytest

from services.router.sessions import session_key
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import Process, running_stack, service_env, sync_client, wipe_tagrouter_keys

MARGIN = 0.05
TTL_S = 600
STRONG, CHEAP = "gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1_concise"
QUERY = "Write a Rust function that parses a CSV line into a Vec<String>, handling quoted fields"


@pytest.fixture(scope="module")
def replicas(redis_url):
    """Two routers over one tagger, one scorer and one session Redis, and a third without sessions."""
    wipe_tagrouter_keys(redis_url)
    sessions = {"TAGROUTER_SESSION_REDIS_URL": redis_url, "TAGROUTER_SESSION_MARGIN": str(MARGIN),
                "TAGROUTER_SESSION_TTL_SECONDS": str(TTL_S)}
    with running_stack(redis_url, **sessions) as procs, contextlib.ExitStack() as stop:
        env = service_env(redis_url, TAGGER_ADDR=procs["tagger"].address, SCORER_ADDR=procs["scorer"].address)
        second = Process("router", {**env, **sessions})
        plain = Process("router", env)
        for proc in (second, plain):
            stop.callback(proc.stop)
        channels = []
        for proc in (procs["router"], second, plain):
            proc.wait_serving()
            channels.append(stop.enter_context(grpc.insecure_channel(proc.address)))
        yield [router_pb2_grpc.RouterServiceStub(c) for c in channels]


def route(stub, cost_weight: float, session_id: str = "") -> router_pb2.RouteResponse:
    return stub.Route(router_pb2.RouteRequest(query=QUERY, candidate_models=[STRONG, CHEAP], cost_weight=cost_weight,
                                              quality_margin=0.0, session_id=session_id), timeout=10)


def cheap_advantage(stub, cost_weight: float) -> float:
    """Utility of the cheap model minus the strong one's, for QUERY at this knob (no session)."""
    reply = route(stub, cost_weight)
    e = reply.explanation
    return e.chosen_utility - e.runner_up_utility if reply.model == CHEAP else e.runner_up_utility - e.chosen_utility


@pytest.fixture(scope="module")
def knobs(replicas):
    """(strong, small, large): cost weights where the strong model wins, where the cheap one wins by
    less than the margin, and where it wins by more (bisection, at most 40 Routes)."""
    stub = replicas[0]
    assert cheap_advantage(stub, 0.0) < 0, "the strong model must win on quality alone"
    low, high = 0.0, 1.0
    for _ in range(10):
        if cheap_advantage(stub, high) > 2 * MARGIN:
            break
        high *= 2
    assert cheap_advantage(stub, high) > 2 * MARGIN
    for _ in range(30):  # the advantage grows with the cost weight: find one in (0, margin / 2]
        middle = (low + high) / 2
        advantage = cheap_advantage(stub, middle)
        if 0 < advantage <= MARGIN / 2:
            return 0.0, middle, high
        low, high = (middle, high) if advantage <= 0 else (low, middle)
    pytest.fail("no cost weight gives the cheap model a win smaller than the margin")


def test_a_conversation_keeps_its_model_until_the_margin_is_beaten(replicas, knobs, redis_url):
    stub, strong, small, large = replicas[0], *knobs
    assert route(stub, small).model == CHEAP  # alone, the second turn would go to the cheap model
    first = route(stub, strong, "conversation-1")
    assert (first.model, first.session_kept) == (STRONG, False)
    second = route(stub, small, "conversation-1")
    assert (second.model, second.session_kept) == (STRONG, True)  # beaten by less than the margin: kept
    assert second.estimated_cost_usd == pytest.approx(next(s.estimated_cost_usd for s in second.scores
                                                           if s.model == STRONG))
    third = route(stub, large, "conversation-1")
    assert (third.model, third.session_kept) == (CHEAP, False)  # beaten by more: switched
    client = sync_client(redis_url)
    key = session_key("conversation-1")  # the id (it may name a user) is stored hashed
    assert "conversation-1" not in key and client.get(key) == CHEAP.encode()
    assert 0 < client.ttl(key) <= TTL_S
    client.close()


def test_two_replicas_agree_on_the_session(replicas, knobs):
    one, two, _ = replicas
    strong, small, large = knobs
    assert route(one, strong, "conversation-2").model == STRONG
    kept = route(two, small, "conversation-2")  # the other replica, which alone would pick the cheap model
    assert (kept.model, kept.session_kept) == (STRONG, True)
    switched = route(two, large, "conversation-2")
    assert (switched.model, switched.session_kept) == (CHEAP, False)
    back = route(one, small, "conversation-2")
    assert (back.model, back.session_kept) == (CHEAP, True)


def test_a_router_without_session_redis_ignores_session_id(replicas, knobs):
    plain = replicas[2]
    strong, small, _ = knobs
    assert route(plain, strong, "conversation-3").model == STRONG
    reply = route(plain, small, "conversation-3")
    assert (reply.model, reply.session_kept) == (CHEAP, False)


def test_a_session_id_too_long_is_invalid(replicas):
    with pytest.raises(grpc.RpcError) as err:
        route(replicas[0], 0.0, "x" * 257)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "session_id" in err.value.details()
