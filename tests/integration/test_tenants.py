"""Tenants against real processes and a real Redis: tokens, pools, budgets, reservations, settlement."""
from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
import redis

from services.common.security import bearer
from services.common.tenant_store import tenant_prefix
from tagrouter.core import tenancy
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import running_stack, wipe_tagrouter_keys

ADMIN = "admin-secret"
QUERY = "Write a detailed essay on the history of distributed consensus algorithms. " * 20


@pytest.fixture(scope="module")
def tenant_stack(redis_url):
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url, TAGROUTER_ADMIN_TOKEN=ADMIN,
                       TAGROUTER_TENANT_RESERVATION_SECONDS="2") as procs:
        yield procs


@pytest.fixture(scope="module")
def channel(tenant_stack):
    with grpc.insecure_channel(tenant_stack["router"].address) as ch:
        yield ch


def create(channel, mode="hard", usd=1.0, allowed=(), window="day") -> tuple[str, str]:
    admin = router_pb2_grpc.TenantServiceStub(channel)
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    answer = admin.CreateTenant(router_pb2.TenantRequest(tenant=router_pb2.Tenant(
        id=tenant_id, mode=mode, allowed_models=allowed, budgets=[router_pb2.Budget(window=window, usd=usd)])),
        metadata=bearer(ADMIN), timeout=10)
    assert answer.token.startswith(tenancy.TOKEN_PREFIX) and answer.tenant.tokens == 1
    return tenant_id, answer.token


def usage(channel, tenant_id: str) -> router_pb2.WindowUsage:
    return router_pb2_grpc.TenantServiceStub(channel).GetTenant(
        router_pb2.TenantId(id=tenant_id), metadata=bearer(ADMIN), timeout=10).usage[0]


def test_tokens_and_pool_are_enforced_and_admin_needs_its_token(channel):
    router = router_pb2_grpc.RouterServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        router.Route(router_pb2.RouteRequest(query="hello"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        router.Route(router_pb2.RouteRequest(query="hello"), metadata=bearer("trk-unknown"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        router_pb2_grpc.TenantServiceStub(channel).ListTenants(router_pb2.ListTenantsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    pool = [s.model for s in router.Route(router_pb2.RouteRequest(query="hi"), metadata=bearer(
        create(channel, usd=100)[1]), timeout=10).scores]
    tenant_id, token = create(channel, usd=100, allowed=pool[:1])
    answer = router.Route(router_pb2.RouteRequest(query="hello"), metadata=bearer(token), timeout=10)
    assert answer.model == pool[0] and answer.tenant == tenant_id and answer.request_id.startswith(tenant_id + ".")
    with pytest.raises(grpc.RpcError) as err:
        router.Route(router_pb2.RouteRequest(query="hello", candidate_models=pool[1:2]), metadata=bearer(token),
                     timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and pool[1] in err.value.details()


def test_settle_retried_is_counted_once_and_expired_reservations_are_released_once(channel, redis_url):
    router = router_pb2_grpc.RouterServiceStub(channel)
    tenant_id, token = create(channel, usd=50)
    first = router.Route(router_pb2.RouteRequest(query="hello there"), metadata=bearer(token), timeout=10)
    assert usage(channel, tenant_id).reserved_nano_usd == tenancy.to_nano(first.estimated_cost_usd)
    for attempt in range(3):
        answer = router.Settle(router_pb2.SettleRequest(request_id=first.request_id, cost_usd=0.123456789),
                               metadata=bearer(token), timeout=10)
        assert answer.duplicate == (attempt > 0)
    now = usage(channel, tenant_id)
    assert (now.spend_nano_usd, now.reserved_nano_usd) == (123456789, 0)
    # a reservation never settled: released once after its 2 s, by the next reservation's script
    router.Route(router_pb2.RouteRequest(query="an abandoned request"), metadata=bearer(token), timeout=10)
    time.sleep(2.2)
    last = router.Route(router_pb2.RouteRequest(query="x"), metadata=bearer(token), timeout=10)
    now = usage(channel, tenant_id)
    assert now.reserved_nano_usd == tenancy.to_nano(last.estimated_cost_usd)  # only the newest is held
    pending = redis.Redis.from_url(redis_url).zcard(tenant_prefix(tenant_id) + ":pending")
    assert pending == 1
    with pytest.raises(grpc.RpcError) as err:  # another tenant's request
        router.Settle(router_pb2.SettleRequest(request_id=last.request_id, cost_usd=1),
                      metadata=bearer(create(channel)[1]), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture(scope="module")
def long_stack(redis_url):
    """Reservations held 600 s (the default), so none expires during the race."""
    with running_stack(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url, TAGROUTER_ADMIN_TOKEN=ADMIN) as procs:
        yield procs


def test_200_concurrent_routes_never_reserve_past_a_1_usd_cap_and_spend_is_exact(long_stack):
    with grpc.insecure_channel(long_stack["router"].address) as channel:
        race_on_a_cap(long_stack, channel)


def race_on_a_cap(tenant_stack, channel):
    tenant_id, token = create(channel, mode="hard", usd=1.0)

    async def race() -> list:
        async with grpc.aio.insecure_channel(tenant_stack["router"].address) as ch:
            stub = router_pb2_grpc.RouterServiceStub(ch)

            async def one(i: int):
                try:
                    return await stub.Route(router_pb2.RouteRequest(query=f"{QUERY} {i}"), metadata=bearer(token),
                                            timeout=60)
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                    assert "resets at" in err.details()
                    return None

            return await asyncio.gather(*(one(i) for i in range(200)))

    answers = asyncio.run(race())
    accepted = [a for a in answers if a is not None]
    reserved = sum(tenancy.to_nano(a.estimated_cost_usd) for a in accepted)
    largest = max(tenancy.to_nano(a.estimated_cost_usd) for a in accepted)
    assert 0 < len(accepted) < 200, "the estimates must overrun the cap for the race to mean anything"
    assert reserved <= tenancy.NANO + largest
    assert usage(channel, tenant_id).reserved_nano_usd == reserved
    router = router_pb2_grpc.RouterServiceStub(channel)
    settled = 0
    for i, a in enumerate(accepted):  # settle each at a different actual cost, some twice
        cost = round(a.estimated_cost_usd * (0.5 + (i % 7) / 10), 9)
        for _ in range(1 + i % 2):
            router.Settle(router_pb2.SettleRequest(request_id=a.request_id, cost_usd=cost), metadata=bearer(token),
                          timeout=10)
        settled += tenancy.to_nano(cost)
    final = usage(channel, tenant_id)
    assert (final.spend_nano_usd, final.reserved_nano_usd) == (settled, 0)
