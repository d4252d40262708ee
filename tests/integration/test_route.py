"""Route through three real servers, a real Redis and the real ONNX model."""
import math

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tagrouter.router.v1 import router_pb2

CODE = "Write a Python function that reverses a linked list"
POEM = "Write a romantic poem about the sea at sunset"
HISTORY = "What were the main causes of the French Revolution?"


def route(stub, query, **kw):
    return stub.Route(router_pb2.RouteRequest(query=query, **kw), timeout=10)


def test_route_answers_with_model_cost_tags_and_scores(router_stub):
    reply = route(router_stub, CODE)
    assert reply.model
    assert reply.estimated_cost_usd > 0
    assert not reply.degraded
    assert "task:code-generation" in [t.name for t in reply.tags]
    assert len(reply.scores) == 7
    assert reply.model in [s.model for s in reply.scores]
    chosen = next(s for s in reply.scores if s.model == reply.model)
    assert chosen.estimated_cost_usd == pytest.approx(reply.estimated_cost_usd)
    assert reply.input_tokens > 5
    assert reply.weights_version and reply.vocabulary_version


def test_different_kinds_of_query_get_different_tags(router_stub):
    tags = {q: {t.name for t in route(router_stub, q).tags if not t.name.startswith("attr:")}
            for q in (CODE, POEM, HISTORY)}
    assert "task:creative-writing" in tags[POEM]
    assert "domain:history-society" in tags[HISTORY]
    assert tags[CODE] != tags[POEM] != tags[HISTORY] != tags[CODE]


def test_candidate_models_restrict_the_choice(router_stub):
    reply = route(router_stub, CODE, candidate_models=["gemma-7b-it", "claude-instant-1.2"])
    assert reply.model in ("gemma-7b-it", "claude-instant-1.2")
    assert {s.model for s in reply.scores} == {"gemma-7b-it", "claude-instant-1.2"}


def test_cost_knob_moves_the_choice_to_cheaper_models(router_stub):
    free = route(router_stub, CODE, cost_weight=0.0)
    thrifty = route(router_stub, CODE, cost_weight=1e6)
    assert thrifty.estimated_cost_usd < free.estimated_cost_usd
    assert thrifty.estimated_cost_usd == min(s.estimated_cost_usd for s in thrifty.scores)


@pytest.mark.parametrize("query", ["", "   \n\t "])
def test_empty_query_is_invalid_argument(router_stub, query):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, query)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query is empty" in err.value.details()


def test_unknown_candidate_model_is_named(router_stub):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, CODE, candidate_models=["gemma-7b-it", "no-such-model"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-model" in err.value.details()


@pytest.mark.parametrize("knob", [-1.0, float("nan"), float("inf")])
def test_bad_cost_weight_is_invalid_argument(router_stub, knob):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, CODE, cost_weight=knob)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cost_weight" in err.value.details()


def test_quality_margin_sends_the_query_to_the_anchor(router_stub):
    thrifty = route(router_stub, POEM, cost_weight=1.0)
    anchored = route(router_stub, POEM, cost_weight=1.0, quality_margin=1e6)
    assert anchored.anchor_model and anchored.model == anchored.anchor_model
    assert anchored.quality_margin == 1e6
    assert thrifty.model != thrifty.anchor_model  # the margin moved the choice
    # the anchor is the candidate with the highest overall rate: restricted candidates restrict it
    pair = route(router_stub, POEM, candidate_models=["gemma-7b-it", "claude-instant-1.2"], quality_margin=1e6)
    assert pair.model == pair.anchor_model and pair.model in ("gemma-7b-it", "claude-instant-1.2")
    plain = route(router_stub, POEM, cost_weight=1.0, quality_margin=0.0)
    assert plain.model == thrifty.model


@pytest.mark.parametrize("knob", [-0.1, float("nan"), float("inf")])
def test_bad_quality_margin_is_invalid_argument(router_stub, knob):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, CODE, quality_margin=knob)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quality_margin" in err.value.details()


def test_query_longer_than_the_window_is_truncated_not_rejected(router_stub):
    reply = route(router_stub, "Please review this essay. " + "The economy grew quickly that year. " * 300)
    assert reply.model and not reply.degraded
    assert reply.input_tokens > 1000  # counted in full for the cost, encoded in part
    assert "attr:long-input" in [t.name for t in reply.tags]


def test_reflection_lists_the_router_service(stack):
    with grpc.insecure_channel(stack["router"].address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert "tagrouter.router.v1.RouterService" in names
    assert "grpc.health.v1.Health" in names


def test_prompt_chars_prices_the_whole_prompt_the_query_is_part_of(router_stub):
    """A query routed on part of a long prompt (a system prompt, earlier turns) is priced as the model
    bills it: at the query's tokens per character times the prompt's characters."""
    alone = route(router_stub, CODE, candidate_models=["gpt4_1106_preview"])
    same = route(router_stub, CODE, candidate_models=["gpt4_1106_preview"], prompt_chars=len(CODE))
    assert (same.input_tokens, same.estimated_cost_usd) == (alone.input_tokens, alone.estimated_cost_usd)
    longer = route(router_stub, CODE, candidate_models=["gpt4_1106_preview"], prompt_chars=20 * len(CODE))
    # the other 19 query lengths at the query's rate, its [CLS] and [SEP] left out
    assert longer.input_tokens == alone.input_tokens + math.ceil(19 * (alone.input_tokens - 2))
    input_usd = (longer.input_tokens - alone.input_tokens) * 10.0 * 1e-6  # gpt4_1106_preview: 10 USD per Mtok in
    assert longer.estimated_cost_usd == pytest.approx(alone.estimated_cost_usd + input_usd)


@pytest.mark.parametrize("prompt_chars", [0, len(CODE) - 1, 8 * 1024 * 1024 + 1])
def test_a_prompt_shorter_than_its_query_or_too_long_is_invalid_argument(router_stub, prompt_chars):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, CODE, prompt_chars=prompt_chars)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"prompt_chars is {prompt_chars}: it counts the whole prompt" in err.value.details()
