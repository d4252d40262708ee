# ruff: noqa: F811
"""Tenants: what a tenant could once get for free or see of another's (a stream left early, a session
id, a refused Feedback, the Envoy path, a degraded Route), against real processes and a real Redis."""
from __future__ import annotations

import time
import uuid

import grpc
import httpx
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorStub

from services.common.security import bearer
from tagrouter.core import tenancy
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import Process, running_stack, service_env

# the tenant stacks are test_tenants' fixtures (pytest takes them by name: ruff sees redefinitions)
from tests.integration.test_tenants import ADMIN, POOL, channel, create, long_stack, processing, tenant_stack, usage  # noqa: F401


def test_a_stream_the_caller_leaves_is_settled_at_its_estimate(long_stack):
    """A caller that closed the stream before the last chunk (which carries `usage`) left its
    reservation to expire: the answer it was streaming cost its tenant nothing."""
    with grpc.insecure_channel(long_stack.router) as channel:
        tenant_id, token = create(channel, usd=100, allowed=POOL[:1])
        body = {"model": POOL[0], "stream": True, "messages": [{"role": "user", "content": "hello"}]}
        long_stack.fake_upstream.chunk_delay_s = 2.0
        try:
            with httpx.stream("POST", long_stack.gateway + "/chat/completions", json=body, timeout=30,
                              headers={"authorization": f"Bearer {token}"}) as answer:
                assert answer.status_code == 200
                estimate = float(answer.headers["x-tagrouter-estimated-cost-usd"])
                next(answer.iter_raw())  # the first chunk, then the caller leaves
        finally:
            long_stack.fake_upstream.chunk_delay_s = 0.0
        deadline = time.monotonic() + 15
        while usage(channel, tenant_id).reserved_nano_usd and time.monotonic() < deadline:
            time.sleep(0.2)
        settled = usage(channel, tenant_id)
        assert settled.reserved_nano_usd == 0
        assert settled.spend_nano_usd == tenancy.to_nano(round(estimate, 9)) or \
            abs(settled.spend_nano_usd - tenancy.to_nano(estimate)) <= 10


def test_a_session_id_is_the_tenants_own(channel):
    """Sessions were keyed by their id alone: tenant B, naming tenant A's session id, learnt which
    model A's conversation used (session_kept) and could pin it for A."""
    router = router_pb2_grpc.RouterServiceStub(channel)
    (_, token_a), (_, token_b) = create(channel, usd=100), create(channel, usd=100)
    session = f"shared-{uuid.uuid4().hex[:8]}"

    def route(token: str, model: str) -> router_pb2.RouteResponse:
        return router.Route(router_pb2.RouteRequest(query="hello there", session_id=session, candidate_models=[model]),
                            metadata=bearer(token), timeout=30)

    assert not route(token_a, POOL[1]).session_kept  # A's conversation starts on POOL[1]
    assert route(token_a, POOL[1]).session_kept
    assert not route(token_b, POOL[1]).session_kept, "B saw A's session"
    route(token_b, POOL[2])  # B's own session moves to POOL[2]; A's stays where it was
    assert route(token_a, POOL[1]).session_kept


def test_a_refused_or_repeated_feedback_settles_nothing(long_stack):
    """A Feedback refused for an unknown model, or a repeated feedback_id naming another routed
    request, still settled that request (at a million output tokens: 30 USD)."""
    from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

    channel = grpc.insecure_channel(long_stack.router)  # reservations held 600 s: none expires meanwhile
    tenant_id, token = create(channel, usd=100)
    router = router_pb2_grpc.RouterServiceStub(channel)
    first, second = (router.Route(router_pb2.RouteRequest(query=f"judge me {i}"), metadata=bearer(token), timeout=10)
                     for i in range(2))
    reserved = usage(channel, tenant_id).reserved_nano_usd
    with grpc.insecure_channel(long_stack.scorer) as scorer:
        stub = scorer_pb2_grpc.ScorerServiceStub(scorer)

        def feedback(model: str, feedback_id: str, request_id: str):
            return stub.Feedback(scorer_pb2.FeedbackRequest(
                tags=scorer_pb2.TagList(names=["task:qa"]), model=model, outcome=scorer_pb2.OUTCOME_WIN,
                output_tokens=1_000_000, feedback_id=feedback_id, route_request_id=request_id),
                metadata=bearer(ADMIN), timeout=10)

        with pytest.raises(grpc.RpcError) as refused:
            feedback("no-such-model", f"{first.request_id}-a", first.request_id)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not feedback(first.model, f"{first.request_id}-b", first.request_id).duplicate
        assert feedback(second.model, f"{first.request_id}-b", second.request_id).duplicate
    now = usage(channel, tenant_id)
    channel.close()
    # the first request settled once (by the second call); the second is still only reserved
    assert now.spend_nano_usd > 0 and 0 < now.reserved_nano_usd < reserved


def test_behind_envoy_a_tenants_answer_settles_and_its_token_stays_here(long_stack):
    """Behind Envoy nothing settled a tenant's request: its reservation expired uncharged, so a capped
    tenant's allowance refilled every reservation TTL; and its TagRouter token went on to the LLM."""
    with grpc.insecure_channel(long_stack.router) as channel:
        tenant_id, token = create(channel, usd=100)
        ext = ExternalProcessorStub(grpc.insecure_channel(f"127.0.0.1:{long_stack.processes['router'].extproc_port}"))

        def exchange(status: str) -> list[ep.ProcessingResponse]:
            answer = ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(
                headers=[base_pb2.HeaderValue(key=":status", raw_value=status.encode())])))
            return list(ext.Process(iter([*processing(token, "auto"), answer]), timeout=30))

        answers = exchange("200")
        assert "authorization" in answers[0].request_headers.response.header_mutation.remove_headers
        estimate = float(next(h.header.raw_value for h in answers[2].response_headers.response.header_mutation.set_headers
                              if h.header.key == "x-tagrouter-estimated-cost-usd"))
        settled = usage(channel, tenant_id)
        assert settled.reserved_nano_usd == 0 and abs(settled.spend_nano_usd - tenancy.to_nano(estimate)) <= 10
        exchange("502")  # the upstream failed: released at once, nothing spent
        failed = usage(channel, tenant_id)
        assert failed.reserved_nano_usd == 0 and failed.spend_nano_usd == settled.spend_nano_usd


def test_a_degraded_route_holds_the_tenants_budget(redis_url):
    """With the scorer gone the router answered its default model at an estimate of 0: a hard cap
    no longer held, a downgrading tenant got the priciest model, and a router that had never heard a
    price reserved nothing at all."""
    with running_stack(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url, TAGROUTER_ADMIN_TOKEN=ADMIN,
                       TAGROUTER_SCORE_IN_ROUTER="false") as procs, \
            grpc.insecure_channel(procs["router"].address) as channel:
        router = router_pb2_grpc.RouterServiceStub(channel)
        admin = router_pb2_grpc.TenantServiceStub(channel)
        hard_id, hard = create(channel, usd=0.02)
        answer = admin.CreateTenant(router_pb2.TenantRequest(tenant=router_pb2.Tenant(
            id=f"t-{uuid.uuid4().hex[:10]}", mode="downgrade", downgrade_at_pct=50, downgrade_max_cost_usd=0.002,
            budgets=[router_pb2.Budget(window="day", usd=0.02)])), metadata=bearer(ADMIN), timeout=10)
        down = answer.token
        for token in (hard, down):  # healthy: the priciest model, settled at its estimate (over half the cap)
            first = router.Route(router_pb2.RouteRequest(query="hello there", cost_weight=0.0),  # prices: every model
                                 metadata=bearer(token), timeout=30)
            assert first.estimated_cost_usd > 0.011
            router.Settle(router_pb2.SettleRequest(request_id=first.request_id, cost_usd=first.estimated_cost_usd),
                          metadata=bearer(token), timeout=10)
        procs["scorer"].stop()
        with pytest.raises(grpc.RpcError) as refused:
            router.Route(router_pb2.RouteRequest(query="hello there"), metadata=bearer(hard), timeout=30)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
        cheap = router.Route(router_pb2.RouteRequest(query="hello there"), metadata=bearer(down), timeout=30)
        assert cheap.degraded and cheap.budget_action == "downgraded"
        assert 0 < cheap.estimated_cost_usd <= 0.002 and cheap.model != POOL[0]
        assert usage(channel, hard_id).reserved_nano_usd == 0

    blind = Process("router", service_env(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url, TAGROUTER_ADMIN_TOKEN=ADMIN),
                    "--tagger-addr", "127.0.0.1:1", "--scorer-addr", "127.0.0.1:1")
    try:
        with grpc.insecure_channel(blind.address) as channel:
            tenant_id, token = create_when_up(channel)
            with pytest.raises(grpc.RpcError) as unpriced:
                router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query="hello there"),
                                                                 metadata=bearer(token), timeout=10)
            assert unpriced.value.code() == grpc.StatusCode.UNAVAILABLE and "no price" in unpriced.value.details()
            assert usage(channel, tenant_id).reserved_nano_usd == 0
    finally:
        blind.stop()


def create_when_up(channel) -> tuple[str, str]:
    """create() once a router that will never be SERVING has opened its port (bounded: 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return create(channel, usd=1)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_deleting_a_tenant_releases_every_open_reservation(long_stack):
    """DeleteTenant released one batch (64): a tenant recreated under the same id started with the rest reserved."""
    with grpc.insecure_channel(long_stack.router) as channel:
        admin = router_pb2_grpc.TenantServiceStub(channel)
        router = router_pb2_grpc.RouterServiceStub(channel)
        tenant = router_pb2.Tenant(id=f"t-{uuid.uuid4().hex[:10]}", budgets=[router_pb2.Budget(window="day", usd=100)])
        token = admin.CreateTenant(router_pb2.TenantRequest(tenant=tenant), metadata=bearer(ADMIN), timeout=10).token
        for i in range(70):
            router.Route(router_pb2.RouteRequest(query=f"hello {i}", candidate_models=[POOL[2]]), metadata=bearer(token),
                         timeout=30)
        assert usage(channel, tenant.id).reserved_nano_usd > 0
        admin.DeleteTenant(router_pb2.TenantId(id=tenant.id), metadata=bearer(ADMIN), timeout=30)
        admin.CreateTenant(router_pb2.TenantRequest(tenant=tenant), metadata=bearer(ADMIN), timeout=10)
        assert usage(channel, tenant.id).reserved_nano_usd == 0
