"""The pace controller's maths (tagrouter.core.tenancy.pace_weight): the weight that spends the room left."""
from __future__ import annotations

import math

from tagrouter.core import tenancy

# two candidates: a good pricey one (1,000 nano-USD) and a weaker cheap one (100)
SAMPLE = tenancy.PaceSample(0.0, (0.9, 0.5), (1000, 100))


def state(cap_nano: int, spend: int = 0, reserved: int = 0) -> tenancy.WindowState:
    return tenancy.WindowState(tenancy.Budget("day", cap_nano / tenancy.NANO), 0, 100, spend, reserved)


def weight(samples, window, now=10.0, estimated=None, margin=tenancy.Margin()) -> float:
    return tenancy.pace_weight(samples, [window], [window.spend if estimated is None else estimated], now,
                               margin, aim=1.0, lead=0)[0]


def test_room_for_the_pricey_candidate_on_every_query_to_come_spends_freely():
    # one query per 10 s: this one and 9 more before the window ends at 100 s; 10,000 nano-USD cover them
    assert tenancy.arrivals_left([SAMPLE], 10.0, 100.0) == 9.0
    assert weight([SAMPLE], state(10_000)) == 0.0


def test_less_room_per_query_raises_the_weight_past_the_pricey_candidates_edge():
    # 500 per query: only the cheap one fits; its utility passes the pricey one's where
    # 0.9 - w * 1000 / 1000 = 0.5 - w * 100 / 1000 (costs over the mean priciest estimate, 1000): w = 0.4 / 0.9
    assert math.isclose(weight([SAMPLE], state(5_000)), 0.4 / 0.9, rel_tol=1e-6)


def test_actual_costs_above_the_estimates_shrink_the_target():
    # 15,000 left over 10 queries; spent at the estimates (ratio 1): 1,500 a query, the pricey one fits;
    # 5,000 spent on 2,000 estimated: ratio (5,000 + 1,000) / (2,000 + 1,000) = 2 with the prior, so 750
    free = weight([SAMPLE], state(20_000, spend=5_000), estimated=5_000)
    dear = weight([SAMPLE], state(20_000, spend=5_000), estimated=2_000)
    assert free == 0.0 and dear > 0.0


def test_candidates_that_no_longer_fit_the_cap_leave_the_solve():
    # 900 left near the end (95 s of 100: this query and ~0.05 more): 855 a query. The pricey one (1,000)
    # cannot be reserved any more, so the cheap one spends what is left at weight 0; were it still
    # reservable (a cap of 20,000 aimed at half: the same 900 to spend), the weight would rise
    tight = state(10_000, spend=9_100)
    assert tenancy.affordable([1000, 100], [tight], None) == [False, True]
    assert weight([SAMPLE], tight, now=95.0, estimated=9_100) == 0.0
    assert tenancy.pace_weight([SAMPLE], [state(20_000, spend=9_100)], [9_100], 95.0, aim=0.5, lead=0)[0] > 0


def test_the_lead_plans_the_room_to_end_that_many_queries_early():
    # 5,000 left for this query and 9 more: 500 a query without a lead (only the cheap one), 5,000 / (10 - 8)
    # = 2,500 with a lead of 8 (the pricey one fits); within the lead's last queries the whole room is the
    # target (at least this query is counted)
    window = state(5_000)
    assert weight([SAMPLE], window) > 0
    assert tenancy.pace_weight([SAMPLE], [window], [0], 10.0, aim=1.0, lead=8)[0] == 0.0
    assert tenancy.pace_weight([SAMPLE], [state(2_000)], [0], 10.0, aim=1.0, lead=7)[0] > 0  # 2,000 / 3 < 1,000
    assert tenancy.pace_weight([SAMPLE], [state(2_000)], [0], 10.0, aim=1.0, lead=20)[0] == 0.0
    assert tenancy.PACE_LEAD >= 0


def test_no_history_leaves_the_weight_to_the_tenant():
    assert tenancy.pace_weight([], [state(1_000)], [0], 10.0) is None
    assert tenancy.PaceSample.from_json(SAMPLE.to_json()) == SAMPLE
