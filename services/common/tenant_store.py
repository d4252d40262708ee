"""Tenants and their spend in Redis: the specs, the token index and atomic budget accounting.

Every key of one tenant carries the hash tag `{tenant:<id>}`, so its scripts touch one slot and
tenants spread over a Cluster; the token index and the list of ids carry `{tenants}`
(docs/OPERATIONS.md, "Tenants and budgets"). Money is integer nano-USD (sums are exact).

Route reserves its estimate with RESERVE (checks every window's cap, counts the reservation);
the actual cost settles it with SETTLE (moves the reservation to spend, once: a settled request
id is remembered SETTLED_TTL_S); a reservation never settled is released by the next RESERVE or
`release_expired` after its deadline, once (it leaves the pending set in the same script).
"""
from __future__ import annotations

import json
import time
import uuid

from services.common import redis_client, redis_url
from tagrouter.core import tenancy
from tagrouter.core.limits import InvalidRequest
from tagrouter.core.tenancy import Margin, Tenant, WindowState

TENANTS_KEY = "{tenants}:ids"
SETTLED_TTL_S = 7 * 86400  # a settled request id answers `duplicate` this long
RELEASE_BATCH = 64  # expired reservations one script releases (bounded work per call)
SPEND_GRACE_S = 86400  # spend and reservation counters outlive their window by a day

# Release what expired (at most RELEASE_BATCH): each reservation's held amount leaves its window
# counters and it leaves the pending set; the hash stays (marked) so a late settle still prices it.
_RELEASE = """
local released = 0
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, RELEASE_BATCH)) do
  local rkey = ARGV[2] .. rid
  local held = tonumber(redis.call('HGET', rkey, 'amount') or '0')
  local keys = redis.call('HGET', rkey, 'reserved_keys')
  if keys and redis.call('HGET', rkey, 'released') ~= '1' then
    for _, k in ipairs(cjson.decode(keys)) do
      if redis.call('EXISTS', k) == 1 then redis.call('DECRBY', k, held) end
    end
    redis.call('HSET', rkey, 'released', '1')
    released = released + 1
  end
  redis.call('ZREM', KEYS[1], rid)
end
""".replace("RELEASE_BATCH", str(RELEASE_BATCH))

# KEYS: pending, reservation, margin factor, margin overshoot, then (spend, reserved) per window. ARGV:
# now, reservation prefix, estimate, deadline, n, caps..., counter ttls..., fields (JSON), hash ttl. It
# holds the estimate plus the tenant's margin (tenancy.Margin.reservation: the smaller of estimate times
# the factor and estimate plus the overshoot) and answers {ok, refusing window, released, held}.
RESERVE = _RELEASE + """
local estimate, n = tonumber(ARGV[3]), tonumber(ARGV[5])
local amount = estimate * math.max(1, tonumber(redis.call('GET', KEYS[3]) or '1'))
local overshoot = redis.call('GET', KEYS[4])
if overshoot then amount = math.min(amount, estimate + tonumber(overshoot)) end
amount = math.ceil(amount)
for i = 1, n do
  local spend = tonumber(redis.call('GET', KEYS[3 + 2 * i]) or '0')
  local open = tonumber(redis.call('GET', KEYS[4 + 2 * i]) or '0')
  if spend + open + amount > tonumber(ARGV[5 + i]) then return {0, i, released, amount} end
end
local reserved = {}
for i = 1, n do
  redis.call('INCRBY', KEYS[4 + 2 * i], amount)
  redis.call('EXPIRE', KEYS[4 + 2 * i], ARGV[5 + n + i])
  reserved[i] = KEYS[4 + 2 * i]
end
local fields = cjson.decode(ARGV[6 + 2 * n])
redis.call('HSET', KEYS[2], 'amount', amount, 'estimate', estimate, 'reserved_keys', cjson.encode(reserved),
           'spend_keys', fields.spend_keys, 'ttls', fields.ttls, 'in_nano_per_tok', fields.in_nano_per_tok,
           'out_nano_per_tok', fields.out_nano_per_tok, 'input_tokens', fields.input_tokens)
redis.call('EXPIRE', KEYS[2], ARGV[7 + 2 * n])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[8 + 2 * n])
return {1, 0, released, amount}
"""

# KEYS: pending, reservation, settled marker, margin factor, margin overshoot. ARGV: now, reservation
# prefix, amount, marker ttl, request id, margin decay, margin max, margin ttl, overshoot max. The margin
# moves as tenancy.Margin.after.
SETTLE = _RELEASE + """
local done = redis.call('GET', KEYS[3])
if done then return {'duplicate', done} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'unknown', '0'} end
local held = tonumber(redis.call('HGET', KEYS[2], 'amount'))
local estimate = tonumber(redis.call('HGET', KEYS[2], 'estimate') or '0')
if estimate > 0 then
  local actual, decay = tonumber(ARGV[3]), tonumber(ARGV[6])
  local factor = tonumber(redis.call('GET', KEYS[4]) or '1')
  factor = math.max(1, math.min(actual / estimate, tonumber(ARGV[7])), 1 + (factor - 1) * decay)
  redis.call('SET', KEYS[4], string.format('%.17g', factor), 'EX', ARGV[8])
  local overshoot = tonumber(redis.call('GET', KEYS[5]) or '0')
  overshoot = math.min(math.max(0, actual - estimate, math.floor(overshoot * decay)), tonumber(ARGV[9]))
  redis.call('SET', KEYS[5], string.format('%.0f', overshoot), 'EX', ARGV[8])
end
if redis.call('HGET', KEYS[2], 'released') ~= '1' then
  for _, k in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'reserved_keys'))) do
    if redis.call('EXISTS', k) == 1 then redis.call('DECRBY', k, held) end
  end
end
local ttls = cjson.decode(redis.call('HGET', KEYS[2], 'ttls'))
for i, k in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'spend_keys'))) do
  redis.call('INCRBY', k, ARGV[3])
  if redis.call('TTL', k) < 0 then redis.call('EXPIRE', k, ttls[i]) end
end
redis.call('ZREM', KEYS[1], ARGV[5])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
redis.call('DEL', KEYS[2])
return {'settled', ARGV[3]}
"""


def tenant_prefix(tenant_id: str) -> str:
    return "{tenant:" + tenant_id + "}"


def spec_key(tenant_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}:spec"


def token_key(token_hash: str) -> str:
    return f"{{tenants}}:token:{token_hash}"


def margin_key(tenant_id: str) -> str:
    """The tenant's reservation margin factor (tenancy.Margin.factor; absent: 1)."""
    return f"{tenant_prefix(tenant_id)}:margin"


def overshoot_key(tenant_id: str) -> str:
    """The tenant's reservation margin overshoot in nano-USD (tenancy.Margin.overshoot; absent: none yet)."""
    return f"{tenant_prefix(tenant_id)}:overshoot"


def window_keys(tenant_id: str, window: str, start: int) -> tuple[str, str, str]:
    """The (spend, reserved, pace) keys of one window."""
    base = f"{tenant_prefix(tenant_id)}:%s:{window}:{start}"
    return base % "spend", base % "reserved", base % "pace"


def new_request_id(tenant_id: str) -> str:
    return f"{tenant_id}.{uuid.uuid4().hex}"


def tenant_of(request_id: str) -> str:
    """The tenant a request id belongs to ('' when the id is not one of ours)."""
    tenant_id, dot, rest = request_id.partition(".")
    return tenant_id if dot and rest and tenancy.TENANT_ID.match(tenant_id) else ""


class TenantStore:
    """Specs, tokens and accounting of tenants in one Redis (one server, Sentinel or Cluster)."""

    def __init__(self, url: str, reservation_ttl_s: int = 600, ca_file=None):
        self.client = redis_client.connect(redis_url.parse(url), ca_file)
        self.reservation_ttl_s = reservation_ttl_s
        self._reserve = self.client.register_script(RESERVE)
        self._settle = self.client.register_script(SETTLE)

    async def close(self) -> None:
        await self.client.aclose()

    # --- specs and tokens -------------------------------------------------------------------
    async def get(self, tenant_id: str) -> Tenant | None:
        raw = await self.client.get(spec_key(tenant_id))
        return Tenant.from_json(raw) if raw else None

    async def by_token(self, token: str) -> Tenant | None:
        tenant_id = await self.client.get(token_key(tenancy.hash_token(token)))
        return await self.get(tenant_id) if tenant_id else None

    async def put(self, tenant: Tenant, old: Tenant | None = None) -> None:
        """Write the spec, then point its tokens at it (and drop the tokens it no longer has)."""
        await self.client.set(spec_key(tenant.id), tenancy.check(tenant).to_json())
        await self.client.sadd(TENANTS_KEY, tenant.id)
        for h in tenant.token_hashes:
            await self.client.set(token_key(h), tenant.id)
        for h in set(old.token_hashes if old else ()) - set(tenant.token_hashes):
            await self.client.delete(token_key(h))

    async def ids(self) -> list[str]:
        return sorted(await self.client.smembers(TENANTS_KEY))

    async def delete(self, tenant: Tenant) -> None:
        """The spec, its tokens and its id; spend counters expire with their windows."""
        for h in tenant.token_hashes:
            await self.client.delete(token_key(h))
        await self.client.delete(spec_key(tenant.id))
        await self.client.srem(TENANTS_KEY, tenant.id)

    # --- accounting -------------------------------------------------------------------------
    async def state(self, tenant: Tenant, now: float | None = None) -> tuple[list[WindowState], float, Margin]:
        """Every budget window now, the pacing state of the tightest one (0 when new) and the margin."""
        now = time.time() if now is None else now
        bounds = [tenancy.window_bounds(b.window, now) for b in tenant.budgets]
        keys = [k for b, (start, _) in zip(tenant.budgets, bounds) for k in window_keys(tenant.id, b.window, start)]
        *values, factor, overshoot = await self.client.mget([*keys, margin_key(tenant.id), overshoot_key(tenant.id)])
        states = [WindowState(b, start, end, int(values[3 * i] or 0), int(values[3 * i + 1] or 0))
                  for i, (b, (start, end)) in enumerate(zip(tenant.budgets, bounds))]
        tight = tenancy.tightest(states, now)
        pace = 0.0
        if tight is not None:
            pace = float(values[3 * states.index(tight) + 2] or 0.0)
        return states, pace, Margin(max(1.0, float(factor or 1.0)), None if overshoot is None else int(overshoot))

    async def set_pace(self, tenant: Tenant, state: WindowState, cost_weight: float) -> None:
        """Keep the last paced cost weight of a pace tenant's window (`tagrouter tenant show` reports it)."""
        key = window_keys(tenant.id, state.budget.window, state.start)[2]
        await self.client.set(key, repr(cost_weight), ex=state.end - state.start + SPEND_GRACE_S)

    async def reserve(self, tenant: Tenant, request_id: str, amount: int, input_tokens: int = 0,
                      prices_nano_per_tok: tuple[float, float] = (0.0, 0.0),
                      now: float | None = None) -> tuple[str | None, int]:
        """Reserve an estimate of `amount` nano-USD plus the margin in every window: (None when
        done, else the window whose cap refused it; the amount held or asked)."""
        now = time.time() if now is None else now
        prefix = tenant_prefix(tenant.id)
        windows = [(b, *tenancy.window_bounds(b.window, now)) for b in tenant.budgets]
        keys = [f"{prefix}:pending", f"{prefix}:res:{request_id}", margin_key(tenant.id), overshoot_key(tenant.id)]
        spend_keys, ttls = [], []
        for b, start, end in windows:
            spend, reserved, _ = window_keys(tenant.id, b.window, start)
            keys += [spend, reserved]
            spend_keys.append(spend)
            ttls.append(int(end - now) + SPEND_GRACE_S)
        fields = json.dumps({"spend_keys": json.dumps(spend_keys), "ttls": json.dumps(ttls),
                             "in_nano_per_tok": prices_nano_per_tok[0], "out_nano_per_tok": prices_nano_per_tok[1],
                             "input_tokens": input_tokens})
        args = [now, f"{prefix}:res:", amount, now + self.reservation_ttl_s, len(windows),
                *[b.nano for b, _, _ in windows], *ttls, fields, self.reservation_ttl_s + SPEND_GRACE_S, request_id]
        ok, refused, _, held = await self._reserve(keys=keys, args=args)
        return (None if ok else windows[int(refused) - 1][0].window), int(held)

    async def price(self, request_id: str, input_tokens: int | None, output_tokens: float) -> int | None:
        """The cost in nano-USD of a reserved request from its tokens (None: the reservation is gone)."""
        fields = await self.client.hgetall(f"{tenant_prefix(tenant_of(request_id))}:res:{request_id}")
        if not fields:
            return None
        tokens_in = int(fields["input_tokens"]) if input_tokens is None else input_tokens
        return int(round(tokens_in * float(fields["in_nano_per_tok"])
                         + output_tokens * float(fields["out_nano_per_tok"])))

    async def settle(self, request_id: str, amount: int, now: float | None = None) -> tuple[str, int]:
        """("settled" | "duplicate" | "unknown", the amount recorded); an amount outside [0, MAX_SETTLE_USD]
        is refused (InvalidRequest) before anything is written."""
        if not 0 <= amount <= tenancy.to_nano(tenancy.MAX_SETTLE_USD):
            raise InvalidRequest(f"a settled cost must be in [0, {tenancy.MAX_SETTLE_USD:g}] USD, "
                                 f"not {amount / tenancy.NANO:g}")
        now = time.time() if now is None else now
        tenant_id = tenant_of(request_id)
        prefix = tenant_prefix(tenant_id)
        status, recorded = await self._settle(
            keys=[f"{prefix}:pending", f"{prefix}:res:{request_id}", f"{prefix}:settled:{request_id}",
                  margin_key(tenant_id), overshoot_key(tenant_id)],
            args=[now, f"{prefix}:res:", amount, SETTLED_TTL_S, request_id, tenancy.MARGIN_DECAY,
                  tenancy.MARGIN_MAX, tenancy.MARGIN_TTL_S, tenancy.MARGIN_MAX_OVERSHOOT])
        return status, int(recorded)

    async def release_expired(self, tenant_id: str, now: float | None = None) -> int:
        """Release the reservations past their deadline (at most RELEASE_BATCH); how many."""
        prefix = tenant_prefix(tenant_id)
        script = self.client.register_script(_RELEASE + "return released")
        return int(await script(keys=[f"{prefix}:pending"], args=[time.time() if now is None else now,
                                                                   f"{prefix}:res:"]))
