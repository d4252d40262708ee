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

import numpy as np

from tagrouter.core import decision
from tagrouter.core.limits import InvalidRequest

MODES = ("hard", "downgrade", "pace")
WINDOWS = ("minute", "hour", "day", "month")
NANO = 1_000_000_000  # nano-USD per USD
TOKEN_PREFIX = "trk-"
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TENANT_TOKENS = 16  # tokens of one tenant (rotation keeps the old one alive a while)
MAX_TENANT_BUDGETS = 4  # one per window
# Pacing (`pace_weight`): the cost weight at which the tenant's last PACE_RECENT queries (their candidates'
# utilities at weight 0 and estimates) would spend what is left of PACE_AIM times the cap evenly over the
# queries the window still expects (the recent arrival rate times the time left, this one included) less
# PACE_LEAD, on the candidates that still fit, with estimates scaled by the window's actual/estimate ratio.
# PACE_LEAD: the plan ends that many queries before the window does. A reservation is the estimate plus
# its margin, so once the room left is under the priciest candidates' reservations they no longer
# fit and what is left can only go to cheaper answers: planned to the last query, the window ends with
# up to one such reservation unspent (a few % of a budget of a few dozen priciest answers); with the lead,
# the last queries spend that rest on what still fits (their target is the whole room). Costs count in
# USD over the recent queries' mean priciest estimate, not relative to each query's priciest candidate:
# the budget is in USD, so a query whose answers are cheap buys quality cheaply. Chosen on the suites'
# VALID streams (`python -m tagrouter.offline.pacing`; docs/OPERATIONS.md, "Tenants and budgets", says why
# aim 0.99 over 1), never on test.
PACE_RECENT, PACE_AIM, PACE_LEAD = 32, 0.99, 8
PACE_MIN_WEIGHT, PACE_MAX_WEIGHT, PACE_SOLVE_STEPS = 1e-6, 1e4, 40  # the bisection's range and steps (on the log)
# The reservation margin (`Margin`): Route reserves its estimate plus what the tenant's own settles say
# an actual cost can exceed it by (kept in Redis, mirrored by the Lua RESERVE and SETTLE), so a settle
# within what was seen cannot push spend past a cap. Two bounds, the reservation taking the smaller
# excess: the largest actual/estimate ratio (at least 1, at most MARGIN_MAX) and the largest actual minus
# estimate. The ratio alone let one cheap answer ten times its estimate hold ten times every pricey
# estimate from then on, so the pricey models stopped fitting a few % before the cap.
# MARGIN_DECAY per settle pulls both back (1: kept; chosen on VALID with the pace constants).
# MARGIN_TTL_S: kept a month.
MARGIN_DECAY, MARGIN_MAX, MARGIN_TTL_S = 1.0, 16.0, 31 * 86400
MAX_SETTLE_USD = 1e6  # one settle's cost at most (as a budget): nano-USD stay exact in Lua doubles
MARGIN_MAX_OVERSHOOT = int(MAX_SETTLE_USD * NANO)  # the overshoot's bound (nano-USD), so it stays an exact integer


def clock_key(tenant_id: str) -> str:
    """The Redis key of a simulated-clock tenant's time (epoch seconds; the tenant's hash tag)."""
    return "{tenant:" + tenant_id + "}:clock"


def pace_samples_key(tenant_id: str) -> str:
    """The list of a pace tenant's last PACE_RECENT queries (PaceSample JSON, newest first)."""
    return "{tenant:" + tenant_id + "}:pace_recent"


def estimated_key(tenant_id: str, window: str, start: int) -> str:
    """A pace tenant's sum of its reserved estimates in one window (nano-USD), for the actual/estimate ratio."""
    return "{tenant:" + tenant_id + "}:estimated:" + f"{window}:{start}"


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


@dataclass(frozen=True)
class PaceSample:
    """One routed query as pacing remembers it: when, its candidates' utilities at cost weight 0 and
    their estimates (nano-USD)."""

    at: float
    utility: tuple[float, ...]
    costs: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps([round(self.at, 3), [round(u, 6) for u in self.utility], list(self.costs)])

    @classmethod
    def from_json(cls, text: str) -> PaceSample:
        at, utility, costs = json.loads(text)
        return cls(float(at), tuple(map(float, utility)), tuple(map(int, costs)))


def arrivals_left(samples: list[PaceSample], now: float, end: float) -> float:
    """Queries expected after this one before `end`: the recent arrival rate times the time left."""
    span = now - min(s.at for s in samples)
    return len(samples) / span * max(0.0, end - now) if span > 0 else 0.0


@dataclass(frozen=True)
class Margin:
    """What a reservation holds above its estimate, learnt from the tenant's own settles: `factor`, the
    largest settled actual/estimate ratio, and `overshoot`, the largest settled actual minus estimate
    (nano-USD; None before the first settle). The Lua RESERVE and SETTLE compute the same."""

    factor: float = 1.0
    overshoot: int | None = None

    def held(self, estimates_nano):
        """The estimates (a number or an array) plus the smaller of the two excesses, before rounding up."""
        held = np.multiply(estimates_nano, max(1.0, self.factor))
        return held if self.overshoot is None else np.minimum(held, np.add(estimates_nano, self.overshoot))

    def reservation(self, estimate_nano: int) -> int:
        """What Route holds for an estimate, rounded up (as the Lua RESERVE): a settle within both bounds fits."""
        return int(math.ceil(self.held(estimate_nano)))

    def after(self, estimate_nano: int, actual_nano: int, decay: float = MARGIN_DECAY) -> Margin:
        """The margin after one settle: each bound rises to the settle's when that is higher, else is
        pulled back by `decay` (the ratio towards 1, the overshoot towards 0)."""
        if estimate_nano <= 0:
            return self
        factor = max(1.0, min(actual_nano / estimate_nano, MARGIN_MAX), 1.0 + (self.factor - 1.0) * decay)
        overshoot = max(0, actual_nano - estimate_nano, math.floor((self.overshoot or 0) * decay))
        return Margin(factor, int(min(overshoot, MARGIN_MAX_OVERSHOOT)))


def spend_ratio(state: WindowState, estimated_nano: int, factor: float, prior_nano: float) -> float:
    """Actual over estimated spend in the window, the settled part (open reservations, held at most at
    the estimate times the margin's factor, taken out), pulled to 1 by `prior_nano` of estimates."""
    settled = max(0.0, estimated_nano - state.reserved / max(1.0, factor))
    return (state.spend + prior_nano) / (settled + prior_nano)


def _matrix(samples: list[PaceSample]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s.costs) for s in samples)
    utility = np.full((len(samples), width), -np.inf)
    costs = np.zeros((len(samples), width))
    for i, s in enumerate(samples):
        utility[i, :len(s.utility)], costs[i, :len(s.costs)] = s.utility, s.costs
    return utility, costs


def mean_spend(utility: np.ndarray, costs: np.ndarray, weight: float, scale: float) -> float:
    """The mean estimate of what `decision` chooses for each query at this weight (costs / scale)."""
    chosen = decision.best_of(utility - weight * costs / scale, costs)
    return float(costs[np.arange(len(costs)), chosen].mean())


def solve_weight(utility: np.ndarray, costs: np.ndarray, scale: float, target: float) -> float:
    """The smallest weight whose mean spend is at most `target` (PACE_MAX_WEIGHT when none is)."""
    if mean_spend(utility, costs, 0.0, scale) <= target:
        return 0.0
    if mean_spend(utility, costs, PACE_MAX_WEIGHT, scale) > target:
        return PACE_MAX_WEIGHT
    low, high = math.log(PACE_MIN_WEIGHT), math.log(PACE_MAX_WEIGHT)
    for _ in range(PACE_SOLVE_STEPS):
        mid = 0.5 * (low + high)
        low, high = (low, mid) if mean_spend(utility, costs, math.exp(mid), scale) <= target else (mid, high)
    return math.exp(high)


def pace_weight(samples: list[PaceSample], states: list[WindowState], estimated: list[int], now: float,
                margin: Margin = Margin(), aim: float = PACE_AIM, lead: float = PACE_LEAD) -> tuple[float, float] | None:
    """(cost weight, cost scale in USD) for the next query, the highest any window needs; None with no samples.

    Per window: what is left of aim * cap, over this query and those expected after it less `lead` (at
    least this one), divided by the window's actual/estimate ratio, is the target mean estimate; the
    recent queries' candidates that no longer fit the caps (estimate plus margin) are out of
    the solve, as they are out of Route."""
    if not samples or not states:
        return None
    utility, costs = _matrix(samples)
    scale = float(costs.max(axis=1).mean()) or 1.0
    left = min(s.left for s in states)
    utility = np.where(np.ceil(margin.held(costs)) <= left, utility, -np.inf)
    refused = np.isinf(utility).all(axis=1)  # a query nothing fits would be refused: it spends nothing
    utility[refused, 0], costs[refused] = 0.0, 0.0
    weight = 0.0
    for state, est in zip(states, estimated):
        room = aim * state.budget.nano - state.spend - state.reserved
        ratio = spend_ratio(state, est, margin.factor, scale)
        queries = max(1.0, 1.0 + arrivals_left(samples, now, state.end) - lead)
        target = max(0.0, room) / queries / ratio
        weight = max(weight, solve_weight(utility, costs, scale, target))
    return weight, scale / NANO


def downgrading(tenant: Tenant, states: list[WindowState]) -> bool:
    return tenant.mode == "downgrade" and any(100 * s.used_share >= tenant.downgrade_at_pct for s in states)


def affordable(costs_nano: list[int], states: list[WindowState], ceiling_nano: int | None,
               margin: Margin = Margin()) -> list[bool]:
    """Which candidates' reservations (estimate plus margin) fit every window's remaining budget, with
    the estimate under the downgrade ceiling, if any."""
    left = min((s.left for s in states), default=None)
    return [(left is None or margin.reservation(c) <= left) and (ceiling_nano is None or c <= ceiling_nano)
            for c in costs_nano]


def updated(tenant: Tenant, **changes) -> Tenant:
    return check(replace(tenant, **changes))
