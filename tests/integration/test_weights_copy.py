"""The router scores from a copy of the weights that the scorer streams (WatchWeights).

Checked against the real thing: the same answers as a router that calls Score for every
query, no Score calls while the copy is current, and a copy that follows feedback and loads.
"""
import time
import urllib.request

import grpc
import pytest

from services.common.settings import DEFAULT_WEIGHTS_FILE
from tagrouter.core.weights import Weights
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack.embedded_redis import free_port
from tests.conftest import Process, service_env, wait_serving, wipe_tagrouter_keys

QUERIES = [
    "Write a Python function that reverses a linked list",
    "Summarise the causes of the French revolution in three sentences",
    "What is the derivative of x^3 * sin(x)?",
    "Translate 'good morning, how are you' into German",
    "Give me a recipe for a vegan chocolate cake",
]


def score_calls(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    prefix = 'tagrouter_rpc_requests_total{code="OK",method="Score",service="ScorerService"} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture(scope="module")
def parts(redis_url):
    """A tagger, a scorer with metrics, a router with the copy and one without."""
    wipe_tagrouter_keys(redis_url)
    env = service_env(redis_url)
    metrics_port = free_port()
    tagger = Process("tagger", env)
    scorer = Process("scorer", dict(env, TAGROUTER_METRICS_PORT=str(metrics_port)))
    addrs = ("--tagger-addr", tagger.address, "--scorer-addr", scorer.address)
    copying = Process("router", env, *addrs)
    calling = Process("router", dict(env, TAGROUTER_SCORE_IN_ROUTER="false"), *addrs)
    procs = {"tagger": tagger, "scorer": scorer, "copying": copying, "calling": calling}
    try:
        for p in (copying, calling):
            wait_serving(p.address, "tagrouter.router.v1.RouterService")
        yield procs, metrics_port
    finally:
        for p in procs.values():
            p.stop()


def route(address: str, query: str) -> router_pb2.RouteResponse:
    with grpc.insecure_channel(address) as channel:
        return router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=query), timeout=10)


def scorer_stub(procs):
    return scorer_pb2_grpc.ScorerServiceStub(grpc.insecure_channel(procs["scorer"].address))


def test_the_copy_answers_what_score_answers_without_calling_it(parts):
    procs, metrics_port = parts
    before = score_calls(metrics_port)
    copied = [route(procs["copying"].address, q) for q in QUERIES]
    assert score_calls(metrics_port) == before, "a router with a current copy made Score calls"
    called = [route(procs["calling"].address, q) for q in QUERIES]
    assert score_calls(metrics_port) == before + len(QUERIES)
    for a, b in zip(copied, called):
        assert not a.degraded and not b.degraded
        assert a.weights_version == b.weights_version
        assert a.model == b.model and a.explanation.runner_up == b.explanation.runner_up
        assert [s.model for s in a.scores] == [s.model for s in b.scores]
        for x, y in zip(a.scores, b.scores):  # Score sends float32; the copy scores in float64
            assert x.score == pytest.approx(y.score, abs=1e-6)
            assert x.estimated_cost_usd == pytest.approx(y.estimated_cost_usd, rel=1e-5)
        assert [t.tag for t in a.explanation.tags] == [t.tag for t in b.explanation.tags]


def test_the_quality_margin_has_the_same_anchor_on_both_paths(parts):
    procs, _ = parts
    replies = {}
    for name in ("copying", "calling"):
        with grpc.insecure_channel(procs[name].address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            replies[name] = [stub.Route(router_pb2.RouteRequest(query=q, cost_weight=1.0, quality_margin=1e6),
                                        timeout=10) for q in QUERIES]
    for a, b in zip(replies["copying"], replies["calling"]):
        assert a.anchor_model and a.anchor_model == b.anchor_model
        assert a.model == a.anchor_model and b.model == b.anchor_model


def test_an_unknown_candidate_is_refused_the_same_way(parts):
    procs, _ = parts
    for name in ("copying", "calling"):
        with grpc.insecure_channel(procs[name].address) as channel, pytest.raises(grpc.RpcError) as err:
            router_pb2_grpc.RouterServiceStub(channel).Route(
                router_pb2.RouteRequest(query=QUERIES[0], candidate_models=["no-such-model"]), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no-such-model" in err.value.details()


def wait_for(condition, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"the router's copy did not follow: {what}"
        time.sleep(0.05)


def test_the_copy_follows_feedback_and_loads(parts):
    procs, _ = parts
    query = QUERIES[1]
    first = route(procs["copying"].address, query)
    loser = first.scores[-1].model if first.scores[-1].model != first.model else first.scores[0].model
    old = {s.model: s.score for s in first.scores}[loser]
    scorer = scorer_stub(procs)
    tags = [t.name for t in first.tags]
    for _ in range(50):  # enough wins on this query's tags to move the model's score
        scorer.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=tags), model=loser,
                                                   outcome=scorer_pb2.OUTCOME_WIN), timeout=10)
    wait_for(lambda: {s.model: s.score for s in route(procs["copying"].address, query).scores}[loser] > old + 1e-3,
             "50 wins for one model")

    loaded = scorer.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()),
                                timeout=30).version
    assert loaded != first.weights_version
    again = wait_for(lambda: (r := route(procs["copying"].address, query)).weights_version == loaded and r,
                     "a new weights version")
    assert {s.model: s.score for s in again.scores}[loser] == pytest.approx(old, abs=1e-6)  # the wins are gone


def test_a_stopping_scorer_ends_its_watches_at_once(redis_url, clean_redis):
    """SIGTERM drains for the grace period; open watches must not hold that up."""
    env = service_env(redis_url, TAGROUTER_GRACE_SECONDS="20")
    tagger = Process("tagger", env)
    scorer = Process("scorer", env)
    router = Process("router", env, "--tagger-addr", tagger.address, "--scorer-addr", scorer.address)
    try:
        wait_serving(router.address, "tagrouter.router.v1.RouterService")
        assert not route(router.address, QUERIES[0]).degraded
        start = time.monotonic()
        assert scorer.stop() == 0
        assert time.monotonic() - start < 10, "the scorer waited for the router's watch to end"
        reply = route(router.address, QUERIES[0])
        assert reply.degraded and "scorer unavailable" in reply.degraded_reason
    finally:
        for p in (router, scorer, tagger):
            p.stop()
