"""Feedback: one judged outcome updates the served counts atomically; Route explains its choice."""
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tagrouter.router.v1 import router_pb2
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc

TAG = "task:code-generation"
MODEL = "gemma-7b-it"


@pytest.fixture(scope="module")
def scorer(stack):
    with grpc.insecure_channel(stack["scorer"].address) as channel:
        yield scorer_pb2_grpc.ScorerServiceStub(channel)


def counts(scorer, *tags):
    weights = scorer.GetWeights(scorer_pb2.GetWeightsRequest(tags=list(tags)), timeout=5)
    return {(c.tag, c.model): c for c in weights.counts}


def feedback(scorer, **kw):
    return scorer.Feedback(scorer_pb2.FeedbackRequest(**kw), timeout=10)


def test_feedback_by_tags_counts_one_outcome_for_each_tag_and_the_prior(scorer):
    before = counts(scorer, TAG, "*")
    reply = feedback(scorer, tags=scorer_pb2.TagList(names=[TAG]), model=MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                     output_tokens=100)
    assert list(reply.tags) == [TAG, "*"]
    after = counts(scorer, TAG, "*")
    for tag in (TAG, "*"):
        old, new = before[(tag, MODEL)], after[(tag, MODEL)]
        delta = (new.win - old.win, new.tie - old.tie, new.loss - old.loss, new.answers - old.answers)
        assert delta == pytest.approx((1, 0, 0, 1))
        assert new.output_tokens - old.output_tokens == pytest.approx(100)
    assert reply.weights_version


def test_feedback_for_a_new_tag_creates_it(scorer):
    feedback(scorer, tags=scorer_pb2.TagList(names=["topic:never-seen-before"]), model=MODEL,
             outcome=scorer_pb2.OUTCOME_LOSS)
    got = counts(scorer, "topic:never-seen-before")[("topic:never-seen-before", MODEL)]
    assert (got.win, got.tie, got.loss, got.answers) == (0, 0, 1, 1)


def test_feedback_by_query_uses_the_tagger(scorer):
    reply = feedback(scorer, query="Write a Python function that reverses a linked list", model=MODEL,
                     outcome=scorer_pb2.OUTCOME_TIE)
    assert TAG in reply.tags and reply.tags[-1] == "*"


def test_concurrent_feedback_loses_no_update(scorer):
    tag = "topic:concurrency-check"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: feedback(scorer, tags=scorer_pb2.TagList(names=[tag]), model=MODEL,
                                         outcome=scorer_pb2.OUTCOME_WIN, output_tokens=10), range(40)))
    got = counts(scorer, tag)[(tag, MODEL)]
    assert (got.win, got.answers, got.output_tokens) == (40, 40, 400)


@pytest.mark.parametrize("kw, needle", [
    ({"model": "no-such-model", "outcome": scorer_pb2.OUTCOME_WIN}, "no-such-model"),
    ({"model": MODEL}, "outcome"),
    ({"model": MODEL, "outcome": scorer_pb2.OUTCOME_WIN, "output_tokens": -1}, "output_tokens"),
    ({"model": "", "outcome": scorer_pb2.OUTCOME_WIN}, "model"),
])
def test_bad_feedback_is_invalid_argument_and_counts_nothing(scorer, kw, needle):
    before = counts(scorer, TAG)
    with pytest.raises(grpc.RpcError) as err:
        feedback(scorer, tags=scorer_pb2.TagList(names=[TAG]), **kw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    assert counts(scorer, TAG) == before


def test_route_explains_the_choice_against_the_runner_up(router_stub):
    reply = router_stub.Route(router_pb2.RouteRequest(query="Write a Python function that reverses a linked list",
                                                      cost_weight=0.05), timeout=10)
    why = reply.explanation
    assert why.runner_up and why.runner_up != reply.model
    assert why.chosen_utility >= why.runner_up_utility
    scores = {s.model: s.score for s in reply.scores}
    assert sum(t.chosen_contribution for t in why.tags) == pytest.approx(scores[reply.model], abs=1e-4)
    assert sum(t.runner_up_contribution for t in why.tags) == pytest.approx(scores[why.runner_up], abs=1e-4)
    assert reply.model in why.summary and why.runner_up in why.summary


def test_a_retried_feedback_id_is_counted_once(scorer):
    tag = "topic:retry-check"
    first = feedback(scorer, tags=scorer_pb2.TagList(names=[tag]), model=MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                     feedback_id="3f1c-retry-0001")
    again = feedback(scorer, tags=scorer_pb2.TagList(names=[tag]), model=MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                     feedback_id="3f1c-retry-0001")
    assert not first.duplicate and again.duplicate
    assert counts(scorer, tag)[(tag, MODEL)].win == 1


def test_unknown_model_does_not_burn_the_feedback_id(scorer):
    tag = "topic:retry-unknown"
    with pytest.raises(grpc.RpcError) as err:
        feedback(scorer, tags=scorer_pb2.TagList(names=[tag]), model="ghost", outcome=scorer_pb2.OUTCOME_WIN,
                 feedback_id="id-ghost-1")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ghost" in err.value.details()
    ok = feedback(scorer, tags=scorer_pb2.TagList(names=[tag]), model=MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                  feedback_id="id-ghost-1")
    assert not ok.duplicate


@pytest.mark.parametrize("bad_id", ["x" * 129, "tab\there"])
def test_bad_feedback_id_is_invalid_argument(scorer, bad_id):
    with pytest.raises(grpc.RpcError) as err:
        feedback(scorer, tags=scorer_pb2.TagList(names=[TAG]), model=MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                 feedback_id=bad_id)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "feedback_id" in err.value.details()
