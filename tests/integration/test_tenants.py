"""Tenants against real processes and a real Redis: tokens, pools, budgets, reservations, settlement."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import subprocess
import time
import uuid

import grpc
import httpx
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorStub

from services.common.security import bearer
from services.common.tenant_store import TenantStore, margin_key, new_request_id, overshoot_key, tenant_prefix
from tagrouter.core import tenancy
from tagrouter.core.limits import InvalidRequest
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.stack import LocalStack
from tagrouter.stack.fake_upstream import FakeUpstream
from tests.conftest import TAGROUTER, running_stack, service_env, wipe_tagrouter_keys

ADMIN = "admin-secret"
POOL = ("gpt4_1106_preview", "claude-instant-1.2", "gemma-7b-it")
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


async def margin_and_pending(redis_url: str, tenant_id: str) -> tuple[tenancy.Margin, int]:
    """The tenant's margin (its two keys as Redis holds them) and open reservations (any Redis mode)."""
    store = TenantStore(redis_url)
    try:
        factor, overshoot = await store.client.mget([margin_key(tenant_id), overshoot_key(tenant_id)])
        return (tenancy.Margin(float(factor), int(overshoot)),
                int(await store.client.zcard(tenant_prefix(tenant_id) + ":pending")))
    finally:
        await store.close()


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
    margin, pending = asyncio.run(margin_and_pending(redis_url, tenant_id))  # margin: from the settle above
    assert margin == tenancy.Margin().after(tenancy.to_nano(first.estimated_cost_usd), 123456789)
    assert now.reserved_nano_usd == margin.reservation(tenancy.to_nano(last.estimated_cost_usd))  # the newest
    assert pending == 1
    with pytest.raises(grpc.RpcError) as err:  # another tenant's request
        router.Settle(router_pb2.SettleRequest(request_id=last.request_id, cost_usd=1),
                      metadata=bearer(create(channel)[1]), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_settle_refuses_negative_or_endless_tokens_and_writes_nothing(channel, redis_url):
    """A negative output_tokens would lower spend and an endless one break the margin: INVALID_ARGUMENT,
    with spend, the reservation and the margin untouched; a valid settle then goes through."""
    router = router_pb2_grpc.RouterServiceStub(channel)
    tenant_id, token = create(channel, usd=50)
    first = router.Route(router_pb2.RouteRequest(query="hello there"), metadata=bearer(token), timeout=10)
    held = usage(channel, tenant_id).reserved_nano_usd
    for bad in (-5.0, float("inf"), float("nan"), 1e18):
        with pytest.raises(grpc.RpcError) as err:
            router.Settle(router_pb2.SettleRequest(request_id=first.request_id, output_tokens=bad),
                          metadata=bearer(token), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "output_tokens" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        router.Settle(router_pb2.SettleRequest(request_id=first.request_id, cost_usd=2e6), metadata=bearer(token),
                      timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    now = usage(channel, tenant_id)
    assert (now.spend_nano_usd, now.reserved_nano_usd) == (0, held)

    async def untouched() -> None:
        store = TenantStore(redis_url)
        try:
            assert await store.client.mget([margin_key(tenant_id), overshoot_key(tenant_id)]) == [None, None]
            with pytest.raises(InvalidRequest):  # the store refuses past the bound too, before any write
                await store.settle(first.request_id, tenancy.to_nano(tenancy.MAX_SETTLE_USD) + 1)
        finally:
            await store.close()

    asyncio.run(untouched())
    answer = router.Settle(router_pb2.SettleRequest(request_id=first.request_id, output_tokens=100.0),
                           metadata=bearer(token), timeout=10)
    assert answer.cost_usd > 0 and not answer.duplicate


def test_the_reservation_margin_keeps_a_settle_above_its_estimate_under_the_cap(redis_url):
    """Covered: reservations hold the estimate plus the tenant's margin (the smaller of its largest settled
    actual/estimate ratio's excess and its largest settled excess), so settles within both keep spend
    under the cap. Not covered: a settle above its reservation is recorded in full (spend passes the cap
    by the uncovered part), the margin rises to it and every further reservation is refused."""
    async def run() -> None:
        store = TenantStore(redis_url)
        tenant = tenancy.check(tenancy.Tenant(id=f"t-{uuid.uuid4().hex[:10]}", budgets=(tenancy.Budget("day", 1.0),)))
        await store.put(tenant)
        cap, tenth = tenancy.NANO, tenancy.NANO // 10
        try:
            first = new_request_id(tenant.id)
            assert await store.reserve(tenant, first, tenth) == (None, tenth)  # no history: nothing added
            assert await store.settle(first, 3 * tenth) == ("settled", 3 * tenth)  # 3x its estimate
            assert (await store.state(tenant))[2] == tenancy.Margin(3.0, 2 * tenth)
            ids = [new_request_id(tenant.id) for _ in range(3)]
            assert await store.reserve(tenant, ids[0], tenth) == (None, 3 * tenth)  # 0.3 + 0.3 held
            assert await store.reserve(tenant, ids[1], tenth) == (None, 3 * tenth)  # 0.3 + 0.6 held
            assert await store.reserve(tenant, ids[2], tenth) == ("day", 3 * tenth)  # 1.2 > the cap
            for rid in ids[:2]:  # each settles at 3x its estimate: covered by the margin
                await store.settle(rid, 3 * tenth)
            states, _, margin = await store.state(tenant)
            assert (states[0].spend, states[0].reserved, margin) == (9 * tenth, 0, tenancy.Margin(3.0, 2 * tenth))
            assert states[0].spend <= cap
            small = new_request_id(tenant.id)  # 0.02 estimated, 0.06 held: fits
            assert await store.reserve(tenant, small, tenth // 5) == (None, 3 * tenth // 5)
            await store.settle(small, 2 * tenth)  # 10x its estimate: the margin does not cover it
            states, _, margin = await store.state(tenant)
            assert (states[0].spend, margin) == (11 * tenth, tenancy.Margin(10.0, 2 * tenth))  # in full: 0.1 past
            assert (await store.reserve(tenant, new_request_id(tenant.id), 1))[0] == "day"
        finally:
            await store.delete(tenant)
            await store.close()

    asyncio.run(run())


def test_a_cheap_settle_far_over_its_estimate_adds_its_excess_not_its_ratio_to_pricey_reservations(redis_url):
    """The Lua RESERVE holds what tenancy.Margin.reservation says when the overshoot bound is the smaller:
    after a cheap answer at 10x its estimate, a pricey estimate holds itself plus that excess, so it
    still fits a room the ratio alone (10x) would have refused."""
    async def run() -> None:
        store = TenantStore(redis_url)
        tenant = tenancy.check(tenancy.Tenant(id=f"t-{uuid.uuid4().hex[:10]}", budgets=(tenancy.Budget("day", 1.0),)))
        await store.put(tenant)
        milli = tenancy.NANO // 1000
        try:
            cheap = new_request_id(tenant.id)
            assert await store.reserve(tenant, cheap, milli) == (None, milli)
            await store.settle(cheap, 10 * milli)  # 10x its estimate
            margin = (await store.state(tenant))[2]
            assert margin == tenancy.Margin(10.0, 9 * milli)
            pricey = new_request_id(tenant.id)  # 0.2 USD estimated: 0.209 held, not 2 USD (past the 1 USD cap)
            assert await store.reserve(tenant, pricey, 200 * milli) == (None, margin.reservation(200 * milli))
            assert margin.reservation(200 * milli) == 209 * milli
            small = new_request_id(tenant.id)  # a cheap one still holds ten times its estimate
            assert await store.reserve(tenant, small, milli // 2) == (None, 5 * milli)
        finally:
            await store.delete(tenant)
            await store.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def long_stack(redis_url, tmp_path_factory):
    """Reservations held 600 s (the default), so none expires during the race; a gateway with tenancy in front."""
    with FakeUpstream() as upstream:
        path = tmp_path_factory.mktemp("tenants") / "upstreams.json"
        path.write_text(json.dumps({"models": {m: {"base_url": upstream.base_url, "model": m} for m in POOL}}))
        env = service_env(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url, TAGROUTER_ADMIN_TOKEN=ADMIN,
                          TAGROUTER_TENANCY="true")
        stack = LocalStack(env=env, upstreams=path, quiet=bool(os.environ.get("TAGROUTER_TEST_QUIET")))
        stack.fake_upstream = upstream  # a test may slow its streams
        with contextlib.closing(stack.start()):
            yield stack


def test_the_gateway_and_the_extproc_take_the_tenant_from_the_bearer_token(long_stack):
    with grpc.insecure_channel(long_stack.router) as channel:
        tenant_id, token = create(channel, usd=100, allowed=POOL[:1])
        body = {"model": POOL[1], "messages": [{"role": "user", "content": "hello"}]}
        post = functools.partial(httpx.post, long_stack.gateway + "/chat/completions", timeout=60)
        assert post(json=body).status_code == 401
        assert post(json=body, headers={"authorization": "Bearer trk-nope"}).status_code == 401
        refused = post(json=body, headers={"authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        answered = post(json={**body, "model": POOL[0]}, headers={"authorization": f"Bearer {token}"})
        assert answered.status_code == 200, answered.text
        settled = usage(channel, tenant_id)  # the answer's usage settled the reservation
        assert settled.reserved_nano_usd == 0 and settled.spend_nano_usd > 0
        ext = ExternalProcessorStub(grpc.insecure_channel(f"127.0.0.1:{long_stack.processes['router'].extproc_port}"))
        for headers, model, status in ((token, POOL[1], 403), ("trk-nope", POOL[0], 401), (token, "auto", 0)):
            answers = list(ext.Process(iter(processing(headers, model)), timeout=30))
            got = answers[1].immediate_response.status.code if answers[1].HasField("immediate_response") else 0
            assert got == status, answers[1]


def processing(token: str, model: str) -> list[ep.ProcessingRequest]:
    headers = [(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", f"Bearer {token}")]
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return [ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers]))),
            ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))]


def test_200_concurrent_routes_never_reserve_past_a_1_usd_cap_and_spend_is_exact(long_stack):
    with grpc.insecure_channel(long_stack.router) as channel:
        race_on_a_cap(long_stack.processes, channel)


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


def test_the_tenant_command_creates_updates_shows_and_deletes(tenant_stack):
    env = {**os.environ, "TAGROUTER_ADMIN_TOKEN": ADMIN}
    tenant_id = f"cli-{uuid.uuid4().hex[:8]}"

    def cli(*args: str) -> dict:
        done = subprocess.run([*TAGROUTER, "tenant", *args, "--router", tenant_stack["router"].address],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    made = cli("create", tenant_id, "--mode", "pace", "--per-hour", "2.5", "--models", "gemma-7b-it")
    assert made["token"].startswith(tenancy.TOKEN_PREFIX) and made["tenant"]["mode"] == "pace"
    changed = cli("update", tenant_id, "--mode", "downgrade", "--new-token", "--revoke-old-tokens")
    assert changed["tenant"]["mode"] == "downgrade" and changed["token"] != made["token"]
    assert changed["tenant"]["allowed_models"] == ["gemma-7b-it"] and changed["tenant"]["tokens"] == 1
    assert cli("show", tenant_id)["usage"][0]["budget_usd"] == 2.5
    # a token rotation alone keeps everything else (it once reset pool, budgets and mode to defaults)
    rotated = cli("update", tenant_id, "--new-token")
    assert rotated["token"] not in ("", changed["token"]) and rotated["tenant"]["tokens"] == 2
    assert {k: v for k, v in rotated["tenant"].items() if k != "tokens"} == \
        {k: v for k, v in changed["tenant"].items() if k != "tokens"}
    assert cli("show", tenant_id)["usage"][0]["budget_usd"] == 2.5
    # a window's flag changes that window only (it once replaced every budget); 0 drops one
    windows = cli("update", tenant_id, "--per-day", "9")["tenant"]["budgets"]
    assert sorted((b["window"], b["usd"]) for b in windows) == [("day", 9.0), ("hour", 2.5)]
    assert [b["window"] for b in cli("update", tenant_id, "--per-day", "0")["tenant"]["budgets"]] == ["hour"]
    nothing = subprocess.run([*TAGROUTER, "tenant", "update", tenant_id, "--router", tenant_stack["router"].address],
                             capture_output=True, text=True, env=env, timeout=60)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    cli("delete", tenant_id)
    done = subprocess.run([*TAGROUTER, "tenant", "show", tenant_id, "--router", tenant_stack["router"].address],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "NOT_FOUND" in done.stderr


def test_feedback_with_output_tokens_settles_the_routed_request_once(tenant_stack, channel):
    from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

    tenant_id, token = create(channel, usd=50)
    routed = router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query="judge me"),
                                                              metadata=bearer(token), timeout=10)
    with grpc.insecure_channel(tenant_stack["scorer"].address) as scorer:
        for attempt in range(2):
            scorer_pb2_grpc.ScorerServiceStub(scorer).Feedback(scorer_pb2.FeedbackRequest(
                tags=scorer_pb2.TagList(names=["task:qa"]), model=routed.model, outcome=scorer_pb2.OUTCOME_WIN,
                output_tokens=100, feedback_id=f"{routed.request_id}-{attempt}", route_request_id=routed.request_id),
                metadata=bearer(ADMIN), timeout=10)
    now = usage(channel, tenant_id)
    assert now.reserved_nano_usd == 0 and now.spend_nano_usd > 0
