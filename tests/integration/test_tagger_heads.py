"""The trained heads through the real tagger service: a level they leave empty comes back with why."""
import grpc
import pytest

from services.common.settings import DEFAULT_VOCAB_DIR
from tagrouter.core.tag_heads import TaggerHeads
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import running_stack, wipe_tagrouter_keys

pytestmark = pytest.mark.standalone_only(reason="the tagger keeps nothing in Redis: one mode says it all")

REFUND = "How do I get a refund for a cancelled flight?"  # like no labelled prompt: no task, no field
CODE = "Write a Python function that reverses a linked list"


def tag(address, *queries):
    with grpc.insecure_channel(address) as channel:
        stub = tagger_pb2_grpc.TaggerServiceStub(channel)
        return [stub.Tag(tagger_pb2.TagRequest(query=q), timeout=10) for q in queries]


def test_tag_names_each_level_the_heads_left_empty_with_its_top_tag_and_threshold(redis_url):
    heads = TaggerHeads.load(DEFAULT_VOCAB_DIR)
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_TAGGER_HEADS="true") as procs:
        refund, code = tag(procs["tagger"].address, REFUND, CODE)
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
