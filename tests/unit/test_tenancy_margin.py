"""The reservation margin's maths (tagrouter.core.tenancy): the factor the Lua scripts mirror."""
from __future__ import annotations

from tagrouter.core import tenancy


def test_the_margin_factor_rises_to_a_settled_ratio_and_never_below_one():
    assert tenancy.margin_after(1.0, 100, 300) == 3.0
    assert tenancy.margin_after(3.0, 100, 50) == 1.0 + 2.0 * tenancy.MARGIN_DECAY  # under: held (or decays)
    assert tenancy.margin_after(3.0, 100, 10 ** 9) == tenancy.MARGIN_MAX  # bounded
    assert tenancy.margin_after(2.0, 0, 500) == 2.0  # no estimate: no ratio
    assert tenancy.margin_after(1.0, 100, 20, decay=0.5) == 1.0


def test_a_reservation_is_the_estimate_times_the_factor_rounded_up():
    assert tenancy.reservation(100, 1.0) == 100
    assert tenancy.reservation(100, 0.5) == 100  # never under the estimate
    assert tenancy.reservation(3, 1.5) == 5


def test_affordable_compares_the_reservation_and_the_ceiling_the_estimate():
    state = tenancy.WindowState(tenancy.Budget("day", 1e-6), 0, 86400, 0, 0)  # 1,000 nano-USD left
    assert tenancy.affordable([300, 400], [state], None, 3.0) == [True, False]
    assert tenancy.affordable([300, 400], [state], 350, 1.0) == [True, False]
