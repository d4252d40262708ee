"""Pace mode in a real router against a real Redis: the paced weight follows the room left per query to come."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid

import grpc
import pytest

from services.common.security import bearer
from services.common.tenant_store import TenantStore
from tagrouter.core import tenancy
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import running_stack, wipe_tagrouter_keys

QUERY = "Write a detailed essay on the history of distributed consensus algorithms. " * 20
DAY = 86400 * 11323  # a whole UTC day's start (2001-01-01): the tenant's simulated clock runs inside it


@pytest.fixture(scope="module")
def router(redis_url):
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_TENANT_REDIS_URL=redis_url) as procs:
        with grpc.insecure_channel(procs["router"].address) as channel:
            yield router_pb2_grpc.RouterServiceStub(channel)


def test_pace_spends_freely_with_room_and_weighs_cost_when_the_room_per_query_is_small(router, redis_url):
    async def run() -> None:
        store = TenantStore(redis_url)
        token = tenancy.new_token()
        tenant = tenancy.check(tenancy.Tenant(
            id=f"p-{uuid.uuid4().hex[:10]}", mode="pace", cost_weight=0.0, quality_margin=0.0,
            budgets=(tenancy.Budget("day", 100.0),), token_hashes=(tenancy.hash_token(token),), simulated_clock=True))
        await store.put(tenant)

        async def route_at(at: float) -> router_pb2.RouteResponse:
            await store.client.set(tenancy.clock_key(tenant.id), repr(DAY + at))
            answer = await asyncio.to_thread(router.Route, router_pb2.RouteRequest(query=QUERY),
                                             metadata=bearer(token), timeout=30)
            await asyncio.to_thread(router.Settle, router_pb2.SettleRequest(  # settled at its estimate
                request_id=answer.request_id, cost_usd=answer.estimated_cost_usd), metadata=bearer(token), timeout=30)
            return answer

        try:
            first = await route_at(43200)  # nothing routed yet: the tenant's base weight (0)
            second = await route_at(43200 + 3600)  # 100 USD over ~12 more queries: spend freely
            assert (first.knob_source, first.cost_weight, second.cost_weight) == ("pace", 0.0, 0.0)
            assert second.model == first.model
            costs = {s.model: s.estimated_cost_usd for s in second.scores}
            cheapest = min(costs.values())
            assert costs[second.model] > cheapest  # the best model is not the cheapest, so pacing can show
            # now a cap whose room over the 11 queries expected (2 an hour, 10 hours left) less the lead
            # (PACE_LEAD: the plan ends that many queries early) is between the cheapest estimate and the
            # chosen one, while the chosen one still fits it
            spent = first.estimated_cost_usd + second.estimated_cost_usd
            room = max(1, 11 - tenancy.PACE_LEAD) * (cheapest + costs[second.model]) / 2
            await store.put(dataclasses.replace(tenant, budgets=(tenancy.Budget("day", (spent + room) / tenancy.PACE_AIM),)))
            third = await route_at(43200 + 7200)
            assert third.cost_weight > 0 and costs[third.model] < costs[second.model]
            # the recent queries and the estimates reserved, as the next Routes read them
            recent = await store.client.lrange(tenancy.pace_samples_key(tenant.id), 0, -1)
            assert [tenancy.PaceSample.from_json(x).at for x in recent] == [DAY + 50400.0, DAY + 46800.0, DAY + 43200.0]
            summed = await store.client.get(tenancy.estimated_key(tenant.id, "day", DAY))
            assert int(summed) == sum(tenancy.to_nano(a.estimated_cost_usd) for a in (first, second, third))
        finally:
            await store.delete(tenant)
            await store.close()

    asyncio.run(run())
