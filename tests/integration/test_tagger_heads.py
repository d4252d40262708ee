"""The trained heads through the real services: a level they leave empty comes back with why, from Tag and Route."""
import os

import grpc
import pytest

from services.common.settings import DEFAULT_VOCAB_DIR
from tagrouter.cli.route import print_route
from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.core.weights import Weights
from tagrouter.data import HEADS_STARTER_WEIGHTS_FILE
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import Process, running_stack, service_env, wait_serving, wipe_tagrouter_keys

pytestmark = pytest.mark.standalone_only(reason="the tagger keeps nothing in Redis: one mode says it all")

REFUND = "How do I get a refund for a cancelled flight?"  # like no labelled prompt: no task, no field
CODE = "Write a Python function that reverses a linked list"


def tag(address, *queries):
    with grpc.insecure_channel(address) as channel:
        stub = tagger_pb2_grpc.TaggerServiceStub(channel)
        return [stub.Tag(tagger_pb2.TagRequest(query=q), timeout=10) for q in queries]


def test_tag_and_route_name_each_level_the_heads_left_empty_with_its_top_tag_and_threshold(redis_url, capsys):
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_TAGGER_HEADS="true") as procs:
        refund, code = tag(procs["tagger"].address, REFUND, CODE)
        with grpc.insecure_channel(procs["router"].address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            routed = stub.Route(router_pb2.RouteRequest(query=REFUND), timeout=10)
            advised = stub.Route(router_pb2.RouteRequest(query=REFUND, client_tags=["task:advice"]), timeout=10)
    # Route passes on what the tagger said (the tag cache answers it the same tags)
    assert [(a.level, a.top, a.probability) for a in routed.abstained] == [
        (a.level, a.top, a.probability) for a in refund.abstained]
    assert not routed.degraded and {t.level for t in routed.tags}.isdisjoint(a.level for a in routed.abstained)
    # the scorer behind the heads starts from the weights fitted on the heads' tags
    assert routed.weights_version.split(".")[0] == Weights.load(HEADS_STARTER_WEIGHTS_FILE).version
    print_route(routed, as_json=False)
    assert f"no task tag: its head's top, {refund.abstained[0].top}" in capsys.readouterr().out
    levels = " or ".join(a.level for a in routed.abstained)
    assert f"the tagger was unsure of the query's {levels} (below its threshold)" in routed.explanation.summary
    # a level the client's own tag filled is not one without a tag
    assert "task:advice" in [t.name for t in advised.tags] and "task" in [a.level for a in advised.abstained]
    assert "the tagger was unsure of the query's task" not in advised.explanation.summary
    assert "the tagger was unsure of the query's domain" in advised.explanation.summary
    for reply in (refund, code):
        served = {t.level for t in reply.tags} & set(heads.heads)
        empty = [a.level for a in reply.abstained]
        assert served.isdisjoint(empty) and served | set(empty) == set(heads.heads)  # each level: a tag or why not
        for a in reply.abstained:
            assert a.top in heads.heads[a.level].names and a.threshold == pytest.approx(heads.heads[a.level].threshold)
            assert 0 <= a.probability < a.threshold
    assert {"task", "domain"} <= {a.level for a in refund.abstained}
    assert {t.name for t in code.tags} >= {"task:code-generation", "domain:software-engineering"}


def test_the_prototype_tagger_abstains_from_nothing(stack):
    (refund,) = tag(stack["tagger"].address, REFUND)
    assert not refund.abstained
    with grpc.insecure_channel(stack["router"].address) as channel:
        routed = router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=REFUND), timeout=10)
    assert not routed.abstained and "unsure" not in routed.explanation.summary


def test_the_scorer_says_when_its_weights_count_another_taggers_tags(redis_url):
    """Turning the heads on over a Redis that holds the prototype starter weights keeps those weights
    (a starter file loads into an empty store only): the scorer says so in its log, naming the fix."""
    if os.environ.get("TAGROUTER_TEST_QUIET"):
        pytest.skip("TAGROUTER_TEST_QUIET: the scorer's log is not kept")
    wipe_tagrouter_keys(redis_url)
    logs = []
    for heads in ("false", "true"):  # the first loads the prototype starter weights into the empty store
        scorer = Process("scorer", service_env(redis_url, TAGROUTER_TAGGER_HEADS=heads))
        try:
            wait_serving(scorer.address)
        finally:
            scorer.stop()
        logs.append(scorer.output())
    assert "fitted on" not in logs[0]
    assert "fitted on the prototype tagger's tags, but the tagger serves the trained heads" in logs[1]
    assert "starter_weights_heads.json" in logs[1]
