"""Client free-text tags through Route: aligned to the canonical vocabulary by the real tagger."""
import grpc
import pytest

from tagrouter.router.v1 import router_pb2
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

QUERY = "How long should I rest my dough before baking?"


def route(stub, query=QUERY, **kw):
    return stub.Route(router_pb2.RouteRequest(query=query, **kw), timeout=10)


def test_client_tags_join_the_query_tags_and_move_the_scores(router_stub):
    plain = route(router_stub)
    tagged = route(router_stub, client_tags=["Code Generation", "kubernetes", "asdfgh qwerty zxcv"])
    by_client = {t.client_tag: t for t in tagged.tags if t.client_tag}
    assert by_client["Code Generation"].name == "task:code-generation"  # exact name: score 1
    assert by_client["Code Generation"].score == pytest.approx(1.0) and by_client["Code Generation"].level == "task"
    assert by_client["kubernetes"].name.startswith("topic:kubernetes")  # nearest prototype or name
    assert 0.5 <= by_client["kubernetes"].score < 1
    assert list(tagged.unaligned_client_tags) == ["asdfgh qwerty zxcv"]
    assert {t.name for t in plain.tags} < {t.name for t in tagged.tags}
    assert [s.score for s in plain.scores] != [s.score for s in tagged.scores]
    assert tagged.vocabulary_version == plain.vocabulary_version


def test_a_client_tag_the_query_already_has_is_not_duplicated(router_stub):
    reply = route(router_stub, client_tags=["domain:food-cooking"])
    names = [t.name for t in reply.tags]
    assert names.count("domain:food-cooking") == 1
    assert next(t for t in reply.tags if t.name == "domain:food-cooking").client_tag == "domain:food-cooking"


@pytest.mark.parametrize("client_tags, message", [
    (["x"] * 17, "at most 16"),
    (["python", " "], "client_tags[1] is empty"),
    (["a" * 201], "at most 200"),
])
def test_bad_client_tags_are_invalid_argument(router_stub, client_tags, message):
    with pytest.raises(grpc.RpcError) as err:
        route(router_stub, client_tags=client_tags)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


def test_tagger_aligns_client_tags_in_batches(stack):
    with grpc.insecure_channel(stack["tagger"].address) as channel:
        stub = tagger_pb2_grpc.TaggerServiceStub(channel)
        reply = stub.TagBatch(tagger_pb2.TagBatchRequest(requests=[
            tagger_pb2.TagRequest(query=QUERY, client_tags=["recipes and cooking"]),
            tagger_pb2.TagRequest(query="Solve 3x + 7 = 22"),
        ]), timeout=10)
        assert [t.name for t in reply.responses[0].tags if t.client_tag] == ["domain:food-cooking"]
        assert not any(t.client_tag for t in reply.responses[1].tags)
        with pytest.raises(grpc.RpcError) as err:
            stub.TagBatch(tagger_pb2.TagBatchRequest(requests=[tagger_pb2.TagRequest(query=QUERY, client_tags=[""])]),
                          timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "requests[0].client_tags[0]" in err.value.details()
