"""Tenancy in the router: who is calling (bearer token), what they may route to, what is left of
their budgets, and the reservation Route makes (services/common/tenant_store.py keeps the money).

`Gate.admit` runs before scoring (token, pool, the tenant's default knob, the window states and, for
pace, its recent queries), `Gate.paced` when the knob is resolved (tenancy.pace_weight), `Plan.mask`
inside the decision (downgrade ceiling, what still fits the caps; pace notes the query), `Gate.reserve`
after it (the Lua reservation; refused: RESOURCE_EXHAUSTED with the reset time; pace remembers the query).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from services.common import metrics, security
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, Unauthenticated
from services.common.tenant_store import SPEND_GRACE_S, TenantStore, new_request_id, tenant_of
from tagrouter.core import limits, operating, tenancy
from tagrouter.core.tenancy import PaceSample, Tenant, WindowState


@dataclass
class Plan:
    """One Route's budget decision for one tenant."""

    tenant: Tenant
    states: list[WindowState]
    now: float = 0.0  # the tenant's time at admission (the wall clock, or its simulated clock)
    cost_weight: float | None = None  # pace: the paced weight
    action: str = ""
    margin: tenancy.Margin = tenancy.Margin()  # the tenant's reservation margin (a reservation: margin.reservation)
    samples: list[PaceSample] = field(default_factory=list)  # pace: its recent queries, newest first
    estimated: list[int] = field(default_factory=list)  # pace: per window, the estimates reserved in it
    cost_scale_usd: float = 0.0  # pace: the cost scale its weight is in (0: the weights' own)
    sample: PaceSample | None = None  # pace: this query, remembered once reserved

    def mask(self, costs: np.ndarray, utility_at_zero: np.ndarray | None = None) -> np.ndarray:
        """Candidates the budget allows: in downgrade past its threshold only those under the ceiling;
        in downgrade and pace only those that still fit every cap (hard refuses instead). Pace notes
        the query (its utilities at cost weight 0 and estimates) for the next Routes' weight."""
        if self.tenant.mode == "hard" or not self.states:
            return np.ones(len(costs), dtype=bool)
        nano = [tenancy.to_nano(float(c)) for c in costs]
        if self.action == "paced" and utility_at_zero is not None:
            self.sample = PaceSample(self.now, tuple(map(float, utility_at_zero)), tuple(nano))
        ceiling = None
        if tenancy.downgrading(self.tenant, self.states):
            ceiling = tenancy.to_nano(self.tenant.downgrade_max_cost_usd) or min(nano)
            self.action = "downgraded"
        allowed = np.array(tenancy.affordable(nano, self.states, ceiling, self.margin))
        if not allowed.any():
            raise _exhausted(self.tenant, min(self.states, key=lambda s: s.left))
        return allowed


def _exhausted(tenant: Tenant, state: WindowState) -> ResourceExhausted:
    metrics.TENANT_REFUSED.labels(metrics.tenant_label(tenant.id), state.budget.window).inc()
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.end))
    return ResourceExhausted(f"tenant {tenant.id}: the budget of {state.budget.usd:g} USD per {state.budget.window} "
                             f"is used up; it resets at {reset} (in {max(0, int(state.end - time.time()))} s)")


def check_pool(tenant: Tenant, candidates) -> None:
    """PERMISSION_DENIED for a candidate outside the tenant's pool."""
    outside = [m for m in candidates if not tenant.allows(m)]
    if outside:
        raise PermissionDenied(f"tenant {tenant.id} may not use {', '.join(outside)}; its pool is "
                               f"{', '.join(tenant.allowed_models)}")


class Gate:
    """The router's view of tenants: identify, admit, reserve, settle."""

    def __init__(self, store: TenantStore):
        self.store = store

    async def identify(self, context) -> Tenant:
        token = security.presented_token(context.invocation_metadata())
        tenant = await self.store.by_token(token) if token else None
        if tenant is None:
            raise Unauthenticated("tenancy is on: send 'authorization: Bearer <tenant token>' with a known token")
        return tenant

    async def now(self, tenant: Tenant) -> float:
        """The tenant's time: the wall clock, or for a simulated-clock tenant the time its clock key
        holds (`tagrouter simulate` drives it; no RPC sets either), the wall clock when unset."""
        if not tenant.simulated_clock:
            return time.time()
        raw = await self.store.client.get(tenancy.clock_key(tenant.id))
        return float(raw) if raw else time.time()

    async def admit(self, tenant: Tenant, candidates: list[str],
                    knob: operating.KnobRequest) -> tuple[list[str], operating.KnobRequest, Plan]:
        """The tenant's candidates (its pool, or the request's within it: Route checked them), its
        default knob, its plan."""
        candidates = candidates or list(tenant.allowed_models)
        if knob == operating.KnobRequest() and (tenant.cost_weight is not None or tenant.quality_margin is not None):
            knob = operating.KnobRequest(cost_weight=tenant.cost_weight, quality_margin=tenant.quality_margin)
        now = await self.now(tenant)
        states, _, margin = await self.store.state(tenant, now)
        plan = Plan(tenant, states, now, margin=margin)
        if tenant.mode == "pace" and states:
            plan.action = "paced"
            async with self.store.client.pipeline(transaction=False) as pipe:
                pipe.lrange(tenancy.pace_samples_key(tenant.id), 0, tenancy.PACE_RECENT - 1)
                for s in states:  # GET each: a Cluster pipeline refuses MGET
                    pipe.get(tenancy.estimated_key(tenant.id, s.budget.window, s.start))
                recent, *estimated = await pipe.execute()
            plan.samples = [PaceSample.from_json(x) for x in recent]
            plan.estimated = [int(x or 0) for x in estimated]
        return candidates, knob, plan

    def paced(self, plan: Plan, base: float) -> float | None:
        """The paced cost weight (pace mode with a budget), else None; the base weight until the
        tenant has routed a query."""
        if plan.action != "paced":
            return None
        paced = tenancy.pace_weight(plan.samples, plan.states, plan.estimated, plan.now, plan.margin)
        plan.cost_weight, plan.cost_scale_usd = paced if paced is not None else (base, 0.0)
        return plan.cost_weight

    async def remember(self, plan: Plan, estimate: int) -> None:
        """Pace: the query joins the tenant's recent ones and its estimate its windows' sums."""
        tenant, key = plan.tenant, tenancy.pace_samples_key(plan.tenant.id)
        async with self.store.client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, plan.sample.to_json())
            pipe.ltrim(key, 0, tenancy.PACE_RECENT - 1)
            pipe.expire(key, tenancy.MARGIN_TTL_S)
            for s in plan.states:
                summed = tenancy.estimated_key(tenant.id, s.budget.window, s.start)
                pipe.incrby(summed, estimate)
                pipe.expire(summed, int(s.end - plan.now) + SPEND_GRACE_S)
            await pipe.execute()

    async def reserve(self, plan: Plan, response, prices_per_mtok: tuple[float, float]) -> None:
        """Reserve the chosen model's estimate plus the tenant's margin; refused: RESOURCE_EXHAUSTED
        naming the window and its reset."""
        tenant = plan.tenant
        request_id = new_request_id(tenant.id)
        estimate = tenancy.to_nano(response.estimated_cost_usd)
        per_tok = (prices_per_mtok[0] * 1000, prices_per_mtok[1] * 1000)  # USD/Mtok -> nano-USD per token
        label = metrics.tenant_label(tenant.id)
        refused, amount = await self.store.reserve(tenant, request_id, estimate, response.input_tokens, per_tok,
                                                   plan.now)
        if refused is not None:
            raise _exhausted(tenant, next(s for s in plan.states if s.budget.window == refused))
        metrics.TENANT_RESERVED.labels(label).inc(amount / tenancy.NANO)
        if plan.action:
            metrics.TENANT_BUDGET_ACTIONS.labels(label, plan.action).inc()
        response.tenant, response.request_id, response.budget_action = tenant.id, request_id, plan.action
        now = plan.now
        tight = tenancy.tightest(plan.states, now)
        if tight is not None:
            after = dataclasses.replace(tight, reserved=tight.reserved + amount)
            metrics.TENANT_BUDGET_LEFT.labels(label, tight.budget.window).set(after.left / tenancy.NANO)
            if tenant.mode == "pace" and plan.cost_weight is not None:  # shown by `tagrouter tenant show`
                await self.store.set_pace(tenant, tight, plan.cost_weight)
        if plan.sample is not None:
            await self.remember(plan, estimate)

    async def settle(self, request, context) -> tuple[float, bool]:
        """Settle one request (the caller must hold a token of the request's tenant)."""
        tenant = await self.identify(context)
        if tenant_of(request.request_id) != tenant.id:
            raise PermissionDenied(f"request {request.request_id[:80]!r} is not one of tenant {tenant.id}'s")
        if request.HasField("cost_usd"):
            if not 0 <= request.cost_usd <= tenancy.MAX_SETTLE_USD:
                raise InvalidArgument(f"cost_usd must be in [0, {tenancy.MAX_SETTLE_USD:g}], not {request.cost_usd}")
            amount = tenancy.to_nano(request.cost_usd)
        elif request.HasField("output_tokens"):
            limits.check_output_tokens(request.output_tokens)  # negative or endless: INVALID_ARGUMENT
            amount = await self.store.price(request.request_id, request.input_tokens if request.HasField(
                "input_tokens") else None, request.output_tokens)
        else:
            raise InvalidArgument("Settle needs cost_usd or output_tokens")
        status, recorded = await self.store.settle(request.request_id, amount if amount is not None else 0,
                                                   await self.now(tenant))
        if status == "unknown":
            raise NotFound(f"request {request.request_id[:80]!r} has no reservation (never routed, or long expired)")
        if status == "settled":
            metrics.TENANT_SPEND.labels(metrics.tenant_label(tenant.id)).inc(recorded / tenancy.NANO)
        return recorded / tenancy.NANO, status == "duplicate"
