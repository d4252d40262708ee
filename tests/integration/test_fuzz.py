"""Fuzz every RPC's fields against the real servers: a clear status, never INTERNAL or a hang."""
import math

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
POOL = ["gpt4_1106_preview", "claude-2", "gemma-7b-it"]

text = st.text(st.characters(codec="utf-8"), max_size=400)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
models = st.lists(st.one_of(st.sampled_from(POOL), text), max_size=5)


@pytest.fixture(scope="module")
def stubs(stack):
    channels = [grpc.insecure_channel(stack[name].address) for name in ("router", "tagger", "scorer")]
    yield (router_pb2_grpc.RouterServiceStub(channels[0]), tagger_pb2_grpc.TaggerServiceStub(channels[1]),
           scorer_pb2_grpc.ScorerServiceStub(channels[2]))
    for c in channels:
        c.close()


def status_of(call, request):
    try:
        call(request, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as err:
        return err.code(), err.details()


@FUZZ
@given(query=text, candidates=models, knob=st.one_of(st.none(), floats), margin=st.one_of(st.none(), floats))
def test_route_fuzz(stubs, query, candidates, knob, margin):
    request = router_pb2.RouteRequest(query=query, candidate_models=candidates)
    if knob is not None:
        request.cost_weight = knob
    if margin is not None:
        request.quality_margin = margin
    code, details = status_of(stubs[0].Route, request)
    assert code in ALLOWED, details
    bad_knob = any(k is not None and (not math.isfinite(k) or k < 0) for k in (knob, margin))
    if not query.strip() or bad_knob or any(c not in POOL for c in candidates):
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details


@FUZZ
@given(queries=st.lists(text, max_size=4), per_level=st.integers(0, 2**32 - 1))
def test_tagger_fuzz(stubs, queries, per_level):
    for q in queries:
        code, details = status_of(stubs[1].Tag, tagger_pb2.TagRequest(query=q, tags_per_level=per_level))
        assert code in ALLOWED, details
    batch = tagger_pb2.TagBatchRequest(requests=[tagger_pb2.TagRequest(query=q) for q in queries])
    code, details = status_of(stubs[1].TagBatch, batch)
    assert code in ALLOWED, details


@FUZZ
@given(tags=st.lists(st.tuples(text, floats), max_size=8), candidates=models,
       asked=st.lists(text, max_size=3))
def test_scorer_fuzz(stubs, tags, candidates, asked):
    request = scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=n, weight=w) for n, w in tags],
                                      candidate_models=candidates)
    code, details = status_of(stubs[2].Score, request)
    assert code in ALLOWED, details
    code, details = status_of(stubs[2].GetWeights, scorer_pb2.GetWeightsRequest(tags=asked))
    assert code in ALLOWED, details


@FUZZ
@given(name=text, price=floats, counts=st.lists(floats, min_size=5, max_size=5))
def test_load_weights_fuzz_refuses_bad_weights_without_touching_the_active_ones(stubs, name, price, counts):
    weights = scorer_pb2.Weights(models=[scorer_pb2.Model(name=name, input_usd_per_mtok=price,
                                                          output_usd_per_mtok=price)],
                                 counts=[scorer_pb2.TagCount(tag="*", model=name, win=counts[0], tie=counts[1],
                                                             loss=counts[2], answers=counts[3],
                                                             output_tokens=counts[4])])
    before = stubs[2].ListModels(scorer_pb2.ListModelsRequest(), timeout=5)
    valid = (name and name.isprintable() and "|" not in name and len(name) <= 200 and math.isfinite(price)
             and price >= 0 and all(math.isfinite(c) and c >= 0 for c in counts))
    if valid:
        return  # a valid pool would replace the one the other tests route on
    code, details = status_of(stubs[2].LoadWeights, scorer_pb2.LoadWeightsRequest(weights=weights))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details
    assert stubs[2].ListModels(scorer_pb2.ListModelsRequest(), timeout=5) == before


def test_oversized_messages_are_refused_clearly(stubs):
    code, details = status_of(stubs[0].Route, router_pb2.RouteRequest(query="x" * (17 * 1024 * 1024)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    code, details = status_of(stubs[0].Route, router_pb2.RouteRequest(query="word " * 40_000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most" in details
    too_many = tagger_pb2.TagBatchRequest(requests=[tagger_pb2.TagRequest(query="hi")] * 300)
    code, details = status_of(stubs[1].TagBatch, too_many)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most" in details
