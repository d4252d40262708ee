"""Operating points: the knob in the user's units, and the default one the weights recommend.

`tagrouter fit` sweeps the decision rule's knob path (quality margin, then cost weight) on the
selection rows (train out-of-fold and valid; never test) and stores, with the weights, what
each setting gave there: its cost as a percentage of always using the priciest model
(`cost_pct`) and its accept rate as a percentage of the best single model's (`quality_pct`).
The router translates a request's `max_cost_pct` or `min_quality_pct` through that table
(`point_for`), and serves the table's recommended point when a request sets no knob and the
environment sets none either (`resolve`: the precedence, in one place).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tagrouter.core import limits
from tagrouter.core.limits import InvalidRequest
from tagrouter.scorer.v1 import scorer_pb2


class NoCalibration(LookupError):
    """A request asked for a knob in percent, but the active weights carry no calibration table."""


@dataclass(frozen=True)
class OperatingPoint:
    cost_weight: float
    quality_margin: float
    cost_pct: float  # % of the cost of always using the priciest model, on the calibration rows
    quality_pct: float  # accept rate as % of the best single model's, on the same rows


@dataclass(frozen=True)
class Calibration:
    """The knob path's points on the selection rows, and the recommended one."""

    points: tuple[OperatingPoint, ...]
    recommended: OperatingPoint
    rule: str = ""  # how `recommended` was chosen, and on which rows

    def to_dict(self) -> dict:
        return {"rule": self.rule, "recommended": asdict(self.recommended),
                "points": [[p.cost_weight, p.quality_margin, p.cost_pct, p.quality_pct] for p in self.points]}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibration:
        return cls(tuple(OperatingPoint(*map(float, row)) for row in doc["points"]),
                   OperatingPoint(**{k: float(v) for k, v in doc["recommended"].items()}), str(doc.get("rule", "")))

    def to_proto(self) -> scorer_pb2.Calibration:
        def msg(p: OperatingPoint) -> scorer_pb2.OperatingPoint:
            return scorer_pb2.OperatingPoint(**asdict(p))

        return scorer_pb2.Calibration(points=[msg(p) for p in self.points], recommended=msg(self.recommended),
                                      rule=self.rule)

    @classmethod
    def from_proto(cls, msg: scorer_pb2.Calibration) -> Calibration:
        def point(p) -> OperatingPoint:
            return OperatingPoint(p.cost_weight, p.quality_margin, p.cost_pct, p.quality_pct)

        return cls(tuple(point(p) for p in msg.points), point(msg.recommended), msg.rule)

    def problem(self) -> str | None:
        """What makes the table unusable (None when it is fine): checked before weights load."""
        if not self.points:
            return "no points"
        if len(self.points) > limits.MAX_CALIBRATION_POINTS:
            return f"{len(self.points)} points, at most {limits.MAX_CALIBRATION_POINTS} (MAX_CALIBRATION_POINTS)"
        for p in (*self.points, self.recommended):
            for key, value in asdict(p).items():
                if not math.isfinite(value) or value < 0 or value > limits.MAX_PARAM:
                    return f"{key} must be finite, >= 0 and at most {limits.MAX_PARAM:g}, not {value}"
        return None

    def point_for(self, max_cost_pct: float | None = None, min_quality_pct: float | None = None) -> OperatingPoint:
        """The best accept rate within the cost cap, or the cheapest point reaching the quality floor;
        when none does, the closest point (the cheapest, or the best) and the caller reads its figures."""
        if max_cost_pct is not None:
            within = [p for p in self.points if p.cost_pct <= max_cost_pct + 1e-9]
            if not within:
                return min(self.points, key=lambda p: (p.cost_pct, -p.quality_pct))
            return max(within, key=lambda p: (p.quality_pct, -p.cost_pct))
        if min_quality_pct is not None:
            reaching = [p for p in self.points if p.quality_pct >= min_quality_pct - 1e-9]
            if not reaching:
                return max(self.points, key=lambda p: (p.quality_pct, -p.cost_pct))
            return min(reaching, key=lambda p: (p.cost_pct, -p.quality_pct))
        return self.recommended


@dataclass(frozen=True)
class Applied:
    """The knob a Route applied and where it came from."""

    cost_weight: float
    quality_margin: float
    source: str  # request | max_cost_pct | min_quality_pct | environment | recommended | none
    point: OperatingPoint | None = None  # the calibration point, when one was used


@dataclass(frozen=True)
class KnobRequest:
    """The knob fields of one RouteRequest (None: unset), checked by `check_request`."""

    cost_weight: float | None = None
    quality_margin: float | None = None
    max_cost_pct: float | None = None
    min_quality_pct: float | None = None


def check_pct(name: str, value: float, low_open: bool) -> float:
    """A percentage knob: finite, in (0, 100] for a cost cap, [0, 100] for a quality floor."""
    if not math.isfinite(value) or value > 100 or value < 0 or (low_open and value == 0):
        bounds = "(0, 100]" if low_open else "[0, 100]"
        raise InvalidRequest(f"{name} must be a percentage in {bounds}, not {value}")
    return value


def check_request(knob: KnobRequest) -> KnobRequest:
    """At most one way of setting the knob: the raw cost_weight (with or without quality_margin),
    max_cost_pct or min_quality_pct; each within its range."""
    if knob.cost_weight is not None:
        limits.check_knob("cost_weight", knob.cost_weight)
    if knob.quality_margin is not None:
        limits.check_knob("quality_margin", knob.quality_margin)
    if knob.max_cost_pct is not None:
        check_pct("max_cost_pct", knob.max_cost_pct, low_open=True)
    if knob.min_quality_pct is not None:
        check_pct("min_quality_pct", knob.min_quality_pct, low_open=False)
    pct = [n for n in ("max_cost_pct", "min_quality_pct") if getattr(knob, n) is not None]
    raw = [n for n in ("cost_weight", "quality_margin") if getattr(knob, n) is not None]
    if len(pct) > 1 or (pct and raw):
        raise InvalidRequest(f"set one knob, not {' and '.join(raw + pct)}: cost_weight (with quality_margin), "
                             "max_cost_pct or min_quality_pct")
    return knob


def resolve(knob: KnobRequest, env_cost_weight: float | None, env_quality_margin: float | None,
            calibration: Calibration | None) -> Applied:
    """The knob applied, by precedence: the request's raw knob, else its percentage through the
    weights' calibration, else the environment's (TAGROUTER_COST_WEIGHT / _QUALITY_MARGIN, when
    set), else the weights' recommended point, else 0 (the best expected quality)."""
    if knob.cost_weight is not None or knob.quality_margin is not None:
        return Applied(knob.cost_weight if knob.cost_weight is not None else env_cost_weight or 0.0,
                       knob.quality_margin if knob.quality_margin is not None else env_quality_margin or 0.0,
                       "request")
    for name, value in (("max_cost_pct", knob.max_cost_pct), ("min_quality_pct", knob.min_quality_pct)):
        if value is not None:
            if calibration is None:
                raise NoCalibration(f"{name} needs weights with a calibration table (fit them with "
                                    "`tagrouter fit`); the active weights have none: set cost_weight instead")
            point = calibration.point_for(**{name: value})
            return Applied(point.cost_weight, point.quality_margin, name, point)
    if env_cost_weight is not None or env_quality_margin is not None:
        return Applied(env_cost_weight or 0.0, env_quality_margin or 0.0, "environment")
    if calibration is not None:
        point = calibration.recommended
        return Applied(point.cost_weight, point.quality_margin, "recommended", point)
    return Applied(0.0, 0.0, "none")
