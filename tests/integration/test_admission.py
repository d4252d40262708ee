"""Issue 13 findings 3, 6 and 11 against real processes: 2,000 open WatchWeights streams leave
health, Score, Feedback and Route answering normally; a legal TagBatch on an idle tagger is never
'overloaded', an oversized one is refused at once."""
from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tagrouter.core import limits
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import running_stack, wipe_tagrouter_keys

STREAMS = 2_000
CHANNELS = 8  # connections from this one host: the per-peer limit counts them together


def test_two_thousand_open_streams_leave_room_for_everything_else(redis_url):
    wipe_tagrouter_keys(redis_url)
    # room for all 2,000 (the defaults would refuse most of them, at once, which is tested in-process)
    with running_stack(redis_url, TAGROUTER_MAX_STREAMS="2100", TAGROUTER_MAX_STREAMS_PER_PEER="2100") as procs:
        async def main():
            channels = [grpc.aio.insecure_channel(procs["scorer"].address) for _ in range(CHANNELS)]
            try:
                stubs = [scorer_pb2_grpc.ScorerServiceStub(c) for c in channels]
                calls = []
                for wave in range(STREAMS // 100):  # in waves: a burst of 2,000 call starts makes gRPC's
                    # aio server answer some with CANCELLED (seen with a fake servicer too); waves of 100 do not
                    opened = [stubs[(wave * 100 + i) % CHANNELS].WatchWeights(scorer_pb2.WatchWeightsRequest())
                              for i in range(100)]
                    first = await asyncio.wait_for(asyncio.gather(*(c.read() for c in opened)), 60)
                    assert all(m is not grpc.aio.EOF for m in first), "every stream opened and got the weights"
                    calls += opened

                async with grpc.aio.insecure_channel(procs["scorer"].address) as fresh:
                    start = time.monotonic()
                    health = await health_pb2_grpc.HealthStub(fresh).Check(
                        health_pb2.HealthCheckRequest(service="tagrouter.scorer.v1.ScorerService"), timeout=5)
                    assert health.status == health_pb2.HealthCheckResponse.SERVING
                    scorer = scorer_pb2_grpc.ScorerServiceStub(fresh)
                    pool = await scorer.ListModels(scorer_pb2.ListModelsRequest(), timeout=5)
                    model = pool.models[0].name
                    scored = await scorer.Score(scorer_pb2.ScoreRequest(
                        tags=[scorer_pb2.WeightedTag(name="task:coding", weight=1.0)]), timeout=5)
                    assert scored.scores
                    reply = await scorer.Feedback(scorer_pb2.FeedbackRequest(
                        tags=scorer_pb2.TagList(names=["task:coding"]), model=model,
                        outcome=scorer_pb2.OUTCOME_WIN), timeout=5)
                    assert reply.weights_version
                    async with grpc.aio.insecure_channel(procs["router"].address) as router_channel:
                        routed = await router_pb2_grpc.RouterServiceStub(router_channel).Route(
                            router_pb2.RouteRequest(query="Write a Python function that reverses a list"), timeout=10)
                        assert routed.model and not routed.degraded, routed.degraded_reason
                    assert time.monotonic() - start < 20
                assert all(not c.done() for c in calls), "the streams are still open"
                for c in calls:
                    c.cancel()
            finally:
                for c in channels:
                    await c.close()

        asyncio.run(main())


@pytest.fixture(scope="module")
def tagger(redis_url):
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url) as procs, grpc.insecure_channel(procs["tagger"].address) as channel:
        yield tagger_pb2_grpc.TaggerServiceStub(channel)


def test_a_legal_batch_with_many_client_tags_is_not_overloaded_on_an_idle_tagger(tagger):
    """Finding 11: 17 queries x 16 client tags was 'tagger overloaded'; the limits allow 256 x 16."""
    requests = [tagger_pb2.TagRequest(query=f"Question {i}: how do I sort a list in Python?",
                                      client_tags=[f"team-{i}-{j}" for j in range(limits.MAX_CLIENT_TAGS)])
                for i in range(17)]
    reply = tagger.TagBatch(tagger_pb2.TagBatchRequest(requests=requests), timeout=60)
    assert len(reply.responses) == 17


def test_a_batch_past_the_characters_limit_is_refused_at_once(tagger):
    """Finding 6: 150 x 100k characters held the encoder 14.5 s; now INVALID_ARGUMENT at once."""
    query = "lorem ipsum " * (limits.MAX_QUERY_CHARS // 12)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        tagger.TagBatch(tagger_pb2.TagBatchRequest(requests=[tagger_pb2.TagRequest(query=query)] * 150), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"more than {limits.MAX_BATCH_CHARS} characters" in refused.value.details()
    assert time.monotonic() - start < 5


def test_only_zero_width_characters_and_a_huge_unknown_word_through_the_tagger(tagger):
    """Findings 14 and 10 end to end."""
    with pytest.raises(grpc.RpcError) as refused:
        tagger.Tag(tagger_pb2.TagRequest(query="\u200b\u200c\u200d\ufeff"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert tagger.Tag(tagger_pb2.TagRequest(query="a" * 100_000), timeout=30).input_tokens >= 25_000
