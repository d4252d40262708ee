"""The trained heads through the real services: a level they leave empty comes back with why, from Tag and Route."""
import grpc
import pytest

from services.common.settings import DEFAULT_VOCAB_DIR
from tagrouter.cli.route import print_route
from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.core.weights import Weights
from tagrouter.data import HEADS_STARTER_WEIGHTS_FILE
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import running_stack, wipe_tagrouter_keys

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
            routed = router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=REFUND), timeout=10)
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
