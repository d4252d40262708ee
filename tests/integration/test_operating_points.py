"""The default operating point and the knob in percent, through three real servers and a real Redis."""
import grpc
import pytest

from services.common.settings import DEFAULT_WEIGHTS_FILE
from tagrouter.cli.serve import SAMPLE_QUERIES, sample_routes
from tagrouter.core.weights import Weights
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import REPO_ROOT, running_stack, wipe_tagrouter_keys

STARTER = Weights.load(DEFAULT_WEIGHTS_FILE)


def route(stub, **kw):
    return stub.Route(router_pb2.RouteRequest(query=SAMPLE_QUERIES[-1], **kw), timeout=10)


def test_the_five_sample_queries_do_not_all_go_to_one_model_by_default(stack):
    routes = sample_routes(stack["router"].address, points=(("default", {}),))["default"]
    assert len({r.model for r in routes}) > 1, [r.model for r in routes]
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())  # which model it names is the one
    assert f"the Rust task goes to {routes[-1].model} at the default point" in readme
    recommended = STARTER.calibration.recommended
    for r in routes:
        assert (r.knob_source, r.cost_weight, r.quality_margin) == ("recommended", pytest.approx(recommended.cost_weight),
                                                                    pytest.approx(recommended.quality_margin))
        assert r.knob_cost_pct == pytest.approx(recommended.cost_pct)


def test_the_first_screens_caps_move_sample_queries_to_cheaper_models(stack):
    """`make run`'s first screen shows the knob at work: a lower cap sends more of them to cheaper models."""
    routes = list(sample_routes(stack["router"].address).values())
    costs = [sum(r.estimated_cost_usd for r in point) for point in routes]
    assert costs == sorted(costs, reverse=True) and costs[-1] < costs[0], costs
    moved = [sum(a.model != b.model for a, b in zip(first, later)) for first, later in zip(routes, routes[1:])]
    assert all(moved), [[r.model for r in point] for point in routes]


def test_max_cost_pct_goes_through_the_weights_calibration(router_stub):
    for pct in (30.0, 80.0):
        reply = route(router_stub, max_cost_pct=pct)
        point = STARTER.calibration.point_for(max_cost_pct=pct)
        assert reply.knob_source == "max_cost_pct"
        assert reply.cost_weight == pytest.approx(point.cost_weight) and reply.knob_cost_pct <= pct
    floor = route(router_stub, min_quality_pct=95.0)
    assert floor.knob_source == "min_quality_pct" and floor.knob_quality_pct >= 95.0
    assert route(router_stub, cost_weight=0.0).knob_source == "request"


@pytest.mark.parametrize("knob, message", [
    ({"max_cost_pct": 0.0}, "max_cost_pct must be a percentage in (0, 100]"),
    ({"max_cost_pct": 150.0}, "max_cost_pct must be a percentage"),
    ({"min_quality_pct": float("nan")}, "min_quality_pct must be a percentage in [0, 100]"),
    ({"cost_weight": 0.1, "max_cost_pct": 50.0}, "set one knob, not cost_weight and max_cost_pct"),
])
def test_bad_knobs_are_invalid_argument(router_stub, knob, message):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, **knob)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


def test_an_explicit_environment_knob_overrides_the_recommended_point(redis_url):
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_COST_WEIGHT="0") as procs:
        with grpc.insecure_channel(procs["router"].address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            reply = route(stub)
            assert (reply.knob_source, reply.cost_weight) == ("environment", 0.0)
            assert route(stub, max_cost_pct=50.0).knob_source == "max_cost_pct"  # a request still wins
