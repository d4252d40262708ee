"""Tenants, their budgets and the pacing rule, as pure data and maths (no Redis, no server).

A tenant is one team's API tokens (kept as SHA-256 hashes only), its allowed pool, its default
knob and its budgets: USD per minute, hour, day and/or month, with one mode for all of them:
`hard` (past a cap, refuse), `downgrade` (past `downgrade_at_pct` of a cap, only models whose
estimate is at most `downgrade_max_cost_usd`) or `pace` (the cost weight follows spend against
time elapsed in the window, `pace_weight`). Every mode keeps every cap: a request whose estimate
does not fit what is left is refused. Money is counted in integer nano-USD so sums are exact.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace

from tagrouter.core.limits import InvalidRequest

MODES = ("hard", "downgrade", "pace")
WINDOWS = ("minute", "hour", "day", "month")
NANO = 1_000_000_000  # nano-USD per USD
TOKEN_PREFIX = "trk-"
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TENANT_TOKENS = 16  # tokens of one tenant (rotation keeps the old one alive a while)
MAX_TENANT_BUDGETS = 4  # one per window
# Pacing (a PI controller on the log of the cost weight): the error is the share of the cap used over
# PACE_AIM minus the share of the window elapsed; the weight is base * exp(u + PACE_PROPORTIONAL * error),
# u moves by PACE_GAIN * error per request and stays in [-PACE_LOG_RANGE, PACE_LOG_RANGE]. PACE_AIM 1: the
# reservation margin (below) keeps actual costs above the estimates under the cap. Chosen on the suites' VALID streams
# (`python -m tagrouter.offline.pacing`, docs/PACING.md), never on test.
PACE_GAIN, PACE_PROPORTIONAL, PACE_AIM = 0.25, 32.0, 1.0
PACE_LOG_RANGE, PACE_FLOOR_WEIGHT = math.log(1e4), 0.05
# The reservation margin: Route reserves its estimate times the tenant's factor, a decaying maximum of
# its own settled actual/estimate ratios (`margin_after`; kept in Redis, mirrored by the Lua SETTLE), so a
# settle up to that ratio cannot push spend past a cap. At least 1, at most MARGIN_MAX; MARGIN_DECAY per
# settle pulls it back towards 1 (chosen on VALID with the pace constants). MARGIN_TTL_S: kept a month.
MARGIN_DECAY, MARGIN_MAX, MARGIN_TTL_S = 1.0, 16.0, 31 * 86400


def clock_key(tenant_id: str) -> str:
    """The Redis key of a simulated-clock tenant's time (epoch seconds; the tenant's hash tag)."""
    return "{tenant:" + tenant_id + "}:clock"


def to_nano(usd: float) -> int:
    return int(round(usd * NANO))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh bearer token (shown once; only its hash is stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Budget:
    window: str
    usd: float

    @property
    def nano(self) -> int:
        return to_nano(self.usd)


@dataclass(frozen=True)
class Tenant:
    id: str
    allowed_models: tuple[str, ...] = ()  # empty: the whole pool
    cost_weight: float | None = None
    quality_margin: float | None = None
    budgets: tuple[Budget, ...] = ()
    mode: str = "hard"
    downgrade_at_pct: float = 80.0
    downgrade_max_cost_usd: float = 0.0
    token_hashes: tuple[str, ...] = field(default=(), repr=False)
    name: str = ""
    # True: the tenant's windows follow the simulated time in its clock key (clock_key) instead of the
    # wall clock. No RPC or CLI sets it (only a writer of the spec in Redis: `tagrouter simulate`).
    simulated_clock: bool = False

    def allows(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Tenant:
        raw = json.loads(text)
        raw["budgets"] = tuple(Budget(**b) for b in raw.get("budgets", ()))
        for key in ("allowed_models", "token_hashes"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


def check(tenant: Tenant) -> Tenant:
    """A tenant's fields, each refused with its name (InvalidRequest)."""
    if not TENANT_ID.match(tenant.id):
        raise InvalidRequest(f"tenant id {tenant.id[:80]!r}: 1 to 63 of a-z, 0-9, '_' and '-', starting alphanumeric")
    if tenant.mode not in MODES:
        raise InvalidRequest(f"mode {tenant.mode!r} is not one of {', '.join(MODES)}")
    for name in ("cost_weight", "quality_margin"):
        value = getattr(tenant, name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1e6):
            raise InvalidRequest(f"{name} must be in [0, 1e6], not {value}")
    if not 0 < tenant.downgrade_at_pct <= 100:
        raise InvalidRequest(f"downgrade_at_pct must be in (0, 100], not {tenant.downgrade_at_pct}")
    if not (math.isfinite(tenant.downgrade_max_cost_usd) and tenant.downgrade_max_cost_usd >= 0):
        raise InvalidRequest("downgrade_max_cost_usd must be >= 0")
    windows = [b.window for b in tenant.budgets]
    if len(windows) != len(set(windows)) or len(windows) > MAX_TENANT_BUDGETS:
        raise InvalidRequest(f"budgets: at most one per window ({', '.join(WINDOWS)})")
    for b in tenant.budgets:
        if b.window not in WINDOWS:
            raise InvalidRequest(f"budget window {b.window!r} is not one of {', '.join(WINDOWS)}")
        if not (math.isfinite(b.usd) and 0 < b.usd <= 1e6):  # nano-USD stay exact in Lua doubles
            raise InvalidRequest(f"budget per {b.window} must be in (0, 1e6] USD, not {b.usd}")
    if len(tenant.token_hashes) > MAX_TENANT_TOKENS:
        raise InvalidRequest(f"a tenant has at most {MAX_TENANT_TOKENS} tokens")
    if len(set(tenant.allowed_models)) != len(tenant.allowed_models) or any(not m for m in tenant.allowed_models):
        raise InvalidRequest("allowed_models: names must be distinct and non-empty")
    return tenant


def window_bounds(window: str, now: float) -> tuple[int, int]:
    """The [start, end) epoch seconds (UTC) of the window holding `now`."""
    if window == "month":
        y, m = time.gmtime(now)[:2]  # calendar months, in UTC
        return calendar.timegm((y, m, 1, 0, 0, 0)), calendar.timegm((y + (m == 12), m % 12 + 1, 1, 0, 0, 0))
    length = {"minute": 60, "hour": 3600, "day": 86400}[window]
    start = int(now // length) * length
    return start, start + length


@dataclass(frozen=True)
class WindowState:
    """One budget window now: its cap, settled spend and open reservations (nano-USD)."""

    budget: Budget
    start: int
    end: int
    spend: int
    reserved: int

    @property
    def left(self) -> int:
        return max(0, self.budget.nano - self.spend - self.reserved)

    @property
    def used_share(self) -> float:
        return (self.spend + self.reserved) / self.budget.nano

    def time_share(self, now: float) -> float:
        return min(1.0, max(0.0, (now - self.start) / (self.end - self.start)))


def tightest(states: list[WindowState], now: float) -> WindowState | None:
    """The window whose spend runs furthest ahead of its time (pacing and downgrade follow it)."""
    return max(states, key=lambda s: s.used_share - s.time_share(now), default=None)


def pace_error(used_share: float, time_share: float, aim: float = PACE_AIM) -> float:
    """How far spend runs ahead of time (> 0) or behind it (< 0), against the aimed share of the cap."""
    return used_share / aim - time_share


def window_error(state: WindowState, now: float) -> float:
    return pace_error(state.used_share, state.time_share(now))


def pace_step(u: float, error: float, gain: float = PACE_GAIN) -> float:
    """The pacing state after one request: up when spend runs ahead of time, down when behind."""
    return min(PACE_LOG_RANGE, max(-PACE_LOG_RANGE, u + gain * error))


def pace_weight(base: float, u: float, error: float = 0.0, proportional: float = PACE_PROPORTIONAL) -> float:
    """The paced cost weight: base (at least PACE_FLOOR_WEIGHT, so it can grow from 0) times
    e^(u + proportional * error)."""
    log = min(PACE_LOG_RANGE, max(-PACE_LOG_RANGE, u + proportional * error))
    return max(base, PACE_FLOOR_WEIGHT) * math.exp(log)


def margin_after(factor: float, estimate_nano: int, actual_nano: int, decay: float = MARGIN_DECAY) -> float:
    """The tenant's margin factor after one settle: the settled actual/estimate ratio (at most
    MARGIN_MAX) when it is higher, else the old factor pulled towards 1 by `decay`."""
    if estimate_nano <= 0:
        return factor
    return max(1.0, min(actual_nano / estimate_nano, MARGIN_MAX), 1.0 + (factor - 1.0) * decay)


def reservation(estimate_nano: int, factor: float) -> int:
    """What Route holds for an estimate: the estimate times the margin factor, rounded up (as the Lua RESERVE)."""
    return int(math.ceil(estimate_nano * max(1.0, factor)))


def downgrading(tenant: Tenant, states: list[WindowState]) -> bool:
    return tenant.mode == "downgrade" and any(100 * s.used_share >= tenant.downgrade_at_pct for s in states)


def affordable(costs_nano: list[int], states: list[WindowState], ceiling_nano: int | None,
               factor: float = 1.0) -> list[bool]:
    """Which candidates' reservations (estimate times the margin factor) fit every window's remaining
    budget, with the estimate under the downgrade ceiling, if any."""
    left = min((s.left for s in states), default=None)
    return [(left is None or reservation(c, factor) <= left) and (ceiling_nano is None or c <= ceiling_nano)
            for c in costs_nano]


def updated(tenant: Tenant, **changes) -> Tenant:
    return check(replace(tenant, **changes))
