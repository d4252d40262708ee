"""The reservation margin's maths (tagrouter.core.tenancy.Margin): what the Lua scripts mirror."""
from __future__ import annotations

import numpy as np

from tagrouter.core import tenancy
from tagrouter.core.tenancy import Margin


def test_the_factor_rises_to_a_settled_ratio_and_never_below_one():
    assert Margin().after(100, 300).factor == 3.0
    assert Margin(3.0).after(100, 50).factor == 1.0 + 2.0 * tenancy.MARGIN_DECAY  # under: held (or decays)
    assert Margin().after(100, 10 ** 9).factor == tenancy.MARGIN_MAX  # bounded
    assert Margin(2.0).after(0, 500) == Margin(2.0)  # no estimate: no ratio, no overshoot
    assert Margin().after(100, 20, decay=0.5).factor == 1.0


def test_the_overshoot_rises_to_a_settled_excess_and_never_below_zero():
    assert Margin().overshoot is None  # nothing settled yet
    assert Margin().after(100, 20).overshoot == 0  # under its estimate: no excess
    assert Margin().after(100, 300).overshoot == 200
    assert Margin(3.0, 200).after(1000, 1100).overshoot == 200  # the larger excess is kept (decay 1)
    assert Margin(3.0, 200).after(1000, 1500).overshoot == 500
    assert Margin(3.0, 200).after(100, 20, decay=0.5).overshoot == 100  # pulled back towards 0
    assert Margin().after(1, 10 ** 19).overshoot == tenancy.MARGIN_MAX_OVERSHOOT  # bounded, an exact integer


def test_a_reservation_is_the_estimate_plus_the_smaller_excess_rounded_up():
    assert Margin().reservation(100) == 100
    assert Margin(0.5).reservation(100) == 100  # never under the estimate
    assert Margin(1.5).reservation(3) == 5
    assert Margin(3.0, 500).reservation(100) == 300  # the ratio's excess (200) is the smaller
    assert Margin(3.0, 50).reservation(100) == 150  # the overshoot's (50) is the smaller
    assert Margin(3.0, 0).reservation(100) == 100
    assert list(np.ceil(Margin(3.0, 50).held(np.array([10, 100, 1000])))) == [30, 150, 1050]


def test_a_cheap_answer_far_over_its_estimate_does_not_hold_ten_times_a_pricey_estimate():
    # the case that left pace a few % under its budget: a cheap model settles at 10x its estimate
    margin = Margin().after(1_000_000, 2_000_000).after(600_000, 6_000_000)  # a pricey one at 2x, a cheap one at 10x
    assert margin == Margin(10.0, 5_400_000)
    assert margin.reservation(15_000_000) == 20_400_000  # not 150,000,000: the largest excess seen covers it
    assert margin.reservation(500_000) == 5_000_000  # a cheap one: ten times its estimate, under the overshoot


def test_affordable_compares_the_reservation_and_the_ceiling_the_estimate():
    state = tenancy.WindowState(tenancy.Budget("day", 1e-6), 0, 86400, 0, 0)  # 1,000 nano-USD left
    assert tenancy.affordable([300, 400], [state], None, Margin(3.0)) == [True, False]
    assert tenancy.affordable([300, 400], [state], None, Margin(3.0, 500)) == [True, True]  # 800 and 900 held
    assert tenancy.affordable([300, 400], [state], 350, Margin()) == [True, False]
