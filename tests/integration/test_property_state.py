"""Property (issue 13): whatever Feedback, LoadWeights and Score receive (extreme finite and
non-finite numbers, huge and duplicated lists, odd strings), a real scorer on a real Redis
keeps every stored number finite, answers Score with finite numbers, never fails with
INTERNAL or UNKNOWN, and stays SERVING."""
from __future__ import annotations

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.settings import DEFAULT_WEIGHTS_FILE
from services.scorer.keys import KEY_PATTERN
from services.scorer.store import ACTIVE_KEY, tag_key, tags_key
from tagrouter.core.weights import Weights
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tests.conftest import Process, service_env, sync_client, wait_serving

STARTER = Weights.load(DEFAULT_WEIGHTS_FILE)
MODELS = [m.name for m in STARTER.models]
KNOWN_TAGS = [t for t in STARTER.counts if t != "*"][:20]
EXTREME = st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1.0, 999_999.0, 1e6, 1e6 + 1, 1e12, 1e15, 1e18, 1e19, 1e300,
                           1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan, -1.0, -1e308])
NUMBER = st.one_of(EXTREME, st.floats(allow_nan=True, allow_infinity=True))
ODD = st.one_of(st.sampled_from(["*", "", " ", "a|b", "\x00", "\u200b", "task:" + "x" * 200, "topic:\U0001F600",
                                 "domain:é", "\ud7ff"]),
                st.text(min_size=0, max_size=30), st.sampled_from(KNOWN_TAGS))
TAGS = st.one_of(st.lists(ODD, max_size=20), st.lists(st.sampled_from(KNOWN_TAGS), min_size=1, max_size=3).map(
    lambda t: t * 200))
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

feedback_step = st.builds(lambda tags, model, outcome, tokens, fid: ("feedback", tags, model, outcome, tokens, fid),
                          TAGS, st.one_of(st.sampled_from(MODELS), ODD), st.integers(0, 4),
                          st.one_of(st.none(), NUMBER), st.one_of(st.just(""), st.text(max_size=10)))
load_step = st.builds(lambda field, value, row, price, param: ("load", field, value, row, price, param),
                      st.sampled_from(["win", "tie", "loss", "answers", "output_tokens"]), NUMBER,
                      st.integers(0, 50), st.one_of(st.none(), NUMBER), st.one_of(st.none(), NUMBER))
score_step = st.builds(lambda tags, weight, candidates: ("score", tags, weight, candidates),
                       TAGS, NUMBER, st.one_of(st.just([]), st.lists(st.sampled_from(MODELS + ["nope", ""]),
                                                                   max_size=5).map(lambda c: c * 100)))
STEPS = st.lists(st.one_of(feedback_step, load_step, score_step), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def scorer(redis_url):
    client = sync_client(redis_url)
    for key in client.scan_iter(KEY_PATTERN):
        client.delete(key)
    proc = Process("scorer", service_env(redis_url))
    try:
        wait_serving(proc.address)
        with grpc.insecure_channel(proc.address) as channel:
            yield scorer_pb2_grpc.ScorerServiceStub(channel), health_pb2_grpc.HealthStub(channel), client
    finally:
        proc.stop()
        client.close()


def run_step(stub, step):
    kind = step[0]
    if kind == "feedback":
        _, tags, model, outcome, tokens, fid = step
        request = scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=tags), model=model, outcome=outcome,
                                             feedback_id=fid)
        if tokens is not None:
            request.output_tokens = tokens
        stub.Feedback(request, timeout=10)
    elif kind == "load":
        _, field, value, row, price, param = step
        msg = STARTER.to_proto()
        setattr(msg.counts[row], field, value)
        if price is not None:
            msg.models[row % len(msg.models)].output_usd_per_mtok = price
        if param is not None:
            msg.params.win_reward = param
        stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=msg), timeout=30)
    else:
        _, tags, weight, candidates = step
        reply = stub.Score(scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=t, weight=weight) for t in tags],
                                                   candidate_models=candidates), timeout=10)
        for s in reply.scores:
            assert all(math.isfinite(x) for x in (s.score, s.expected_output_tokens, s.prior_score,
                                                  s.input_usd_per_mtok, s.output_usd_per_mtok)), s
            assert all(math.isfinite(c.contribution) for c in s.contributions)


def check_state(stub, health, client):
    version = client.get(ACTIVE_KEY).decode()
    for tag in client.smembers(tags_key(version)):
        for value in client.hvals(tag_key(version, tag.decode(errors="replace"))):
            assert math.isfinite(float(value)), (tag, value)
    reply = stub.Score(scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=t, weight=1) for t in KNOWN_TAGS]),
                       timeout=10)
    assert reply.scores and all(math.isfinite(s.score) and math.isfinite(s.expected_output_tokens)
                                for s in reply.scores)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=STEPS)
def test_no_input_puts_a_non_finite_number_into_state_or_an_answer(scorer, steps):
    stub, health, client = scorer
    for step in steps:
        try:
            run_step(stub, step)
        except grpc.RpcError as err:
            assert err.code() not in BAD, (step, err.code(), err.details())
        check_state(stub, health, client)
