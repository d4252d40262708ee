"""TenantService: create, update, read, list and delete tenants (admin token; services/common/security.py).

Tokens are made here, answered once in plain text, and stored as SHA-256 hashes only. With the
router on a non-loopback address and no TAGROUTER_ADMIN_TOKEN, every call is refused.
"""
from __future__ import annotations

import dataclasses
import time

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.tenant_store import RELEASE_BATCH, TenantStore
from tagrouter.core import tenancy
from tagrouter.core.limits import InvalidRequest
from tagrouter.core.tenancy import Budget, Tenant
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

EDITABLE = ("name", "allowed_models", "cost_weight", "quality_margin", "budgets", "mode", "downgrade_at_pct",
            "downgrade_max_cost_usd")


def from_proto(message: router_pb2.Tenant) -> dict:
    """The editable fields of a Tenant message, as Tenant's."""
    return {"name": message.name, "allowed_models": tuple(message.allowed_models),
            "cost_weight": message.cost_weight if message.HasField("cost_weight") else None,
            "quality_margin": message.quality_margin if message.HasField("quality_margin") else None,
            "budgets": tuple(Budget(b.window, b.usd) for b in message.budgets), "mode": message.mode or "hard",
            "downgrade_at_pct": message.downgrade_at_pct or 80.0,
            "downgrade_max_cost_usd": message.downgrade_max_cost_usd}


MAX_RELEASE_CALLS = 1000  # DeleteTenant releases up to this many batches of reservations (64,000)

def to_proto(tenant: Tenant) -> router_pb2.Tenant:
    message = router_pb2.Tenant(id=tenant.id, name=tenant.name, allowed_models=tenant.allowed_models,
                                budgets=[router_pb2.Budget(window=b.window, usd=b.usd) for b in tenant.budgets],
                                mode=tenant.mode, downgrade_at_pct=tenant.downgrade_at_pct,
                                downgrade_max_cost_usd=tenant.downgrade_max_cost_usd, tokens=len(tenant.token_hashes))
    for name in ("cost_weight", "quality_margin"):
        if getattr(tenant, name) is not None:
            setattr(message, name, getattr(tenant, name))
    return message


class TenantAdmin(router_pb2_grpc.TenantServiceServicer):
    def __init__(self, store: TenantStore | None, open_refused: bool):
        self.store = store
        self.open_refused = open_refused  # no admin token on a non-loopback address

    def _store(self) -> TenantStore:
        if self.store is None:
            raise FailedPrecondition("tenancy is off: set TAGROUTER_TENANT_REDIS_URL on the router")
        if self.open_refused:
            raise FailedPrecondition("set TAGROUTER_ADMIN_TOKEN on the router to manage tenants from another host")
        return self.store

    async def _answer(self, tenant: Tenant, token: str = "") -> router_pb2.TenantResponse:
        states, paced, _ = await self._store().state(tenant)  # pace: the last paced weight
        usage = [router_pb2.WindowUsage(window=s.budget.window, budget_usd=s.budget.usd, spend_usd=s.spend / tenancy.NANO,
                                        reserved_usd=s.reserved / tenancy.NANO, spend_nano_usd=s.spend,
                                        reserved_nano_usd=s.reserved, resets_at=s.end) for s in states]
        return router_pb2.TenantResponse(tenant=to_proto(tenant), token=token, usage=usage,
                                         paced_cost_weight=paced if tenant.mode == "pace" else 0.0)

    async def _existing(self, tenant_id: str) -> Tenant:
        tenant = await self._store().get(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id[:80]!r}")
        return tenant

    async def CreateTenant(self, request, context):
        store = self._store()
        if await store.get(request.tenant.id) is not None:
            raise InvalidArgument(f"tenant {request.tenant.id!r} exists: use UpdateTenant")
        token = tenancy.new_token()
        try:
            tenant = tenancy.check(Tenant(id=request.tenant.id, token_hashes=(tenancy.hash_token(token),),
                                          **from_proto(request.tenant)))
        except (InvalidRequest, TypeError) as err:
            raise InvalidArgument(str(err)) from None
        await store.put(tenant)
        return await self._answer(tenant, token)

    async def UpdateTenant(self, request, context):
        old = await self._existing(request.tenant.id)
        # empty: every field, but not beside new_token: a token rotation alone must not reset the
        # tenant's pool, budgets and knob to their defaults (the CLI's `update ID --new-token` did)
        fields = list(request.update_fields) or ([] if request.new_token else list(EDITABLE))
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise InvalidArgument(f"update_fields: {', '.join(sorted(unknown))} cannot be changed "
                                  f"(editable: {', '.join(EDITABLE)})")
        given = from_proto(request.tenant)
        token, hashes = "", old.token_hashes
        if request.new_token:
            token = tenancy.new_token()
            hashes = (() if request.revoke_old_tokens else hashes[-(tenancy.MAX_TENANT_TOKENS - 1):]) + \
                (tenancy.hash_token(token),)
        elif request.revoke_old_tokens:
            raise InvalidArgument("revoke_old_tokens needs new_token (a tenant keeps at least one token)")
        try:
            tenant = tenancy.updated(old, token_hashes=hashes, **{f: given[f] for f in fields})
        except InvalidRequest as err:
            raise InvalidArgument(str(err)) from None
        await self._store().put(tenant, old)
        return await self._answer(tenant, token)

    async def GetTenant(self, request, context):
        return await self._answer(await self._existing(request.id))

    async def ListTenants(self, request, context):
        answers = []
        for tenant_id in (await self._store().ids())[:1000]:
            tenant = await self._store().get(tenant_id)
            if tenant is not None:
                answers.append(await self._answer(tenant))
        return router_pb2.ListTenantsResponse(tenants=answers)

    async def DeleteTenant(self, request, context):
        tenant = await self._existing(request.id)
        answer = await self._answer(dataclasses.replace(tenant))
        await self._store().delete(tenant)
        for _ in range(MAX_RELEASE_CALLS):  # every open reservation, a script's batch at a time
            if await self._store().release_expired(tenant.id, time.time() + 10 * 365 * 86400) < RELEASE_BATCH:
                break
        return answer
