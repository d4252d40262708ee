"""TagStream, the long-lived call the router tags over: each message answered once by its id, with the
tags or the status Tag gives the same request; a bad message fails alone, bad bytes end the call."""
import asyncio
import signal
import threading
import time

import grpc
import pytest

from services.router.clients import TagStreams
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.stack import wait_serving
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc
from tests.conftest import Process, running_stack, service_env

pytestmark = pytest.mark.standalone_only(reason="the tagger keeps nothing in Redis: one mode says it all")

QUERIES = ["Write a Python function that reverses a linked list", "Who won the 2018 football world cup?",
           "Compose a sonnet about autumn rain", "How do I get a refund for a cancelled flight?"]


@pytest.fixture(scope="module")
def tagger(stack):
    with grpc.insecure_channel(stack["tagger"].address) as channel:
        yield tagger_pb2_grpc.TaggerServiceStub(channel)


def message(i: int, query: str, **kw) -> tagger_pb2.TagStreamRequest:
    return tagger_pb2.TagStreamRequest(id=i, request=tagger_pb2.TagRequest(query=query, **kw))


def test_each_message_gets_tag_s_answer_under_its_own_id(tagger):
    sent = [message(100 + i, q) for i, q in enumerate(QUERIES)]
    sent += [message(7, ""), message(8, "ok", client_tags=["x"] * 17), message(9, QUERIES[0], tags_per_level=1)]
    answers = {a.id: a for a in tagger.TagStream(iter(sent), timeout=30)}
    assert sorted(answers) == sorted(m.id for m in sent)  # each once, whatever the order
    for m in sent:
        try:
            expected, code = tagger.Tag(m.request, timeout=10), grpc.StatusCode.OK
        except grpc.RpcError as err:
            expected, code = err.details(), err.code()
        got = answers[m.id]
        assert got.code == code.value[0], (m.id, got.message)
        if code == grpc.StatusCode.OK:
            assert got.response == expected and got.response.input_tokens > 0
        else:
            assert got.message == expected and not got.HasField("response")
    assert answers[7].message == "query is empty" and "at most 16" in answers[8].message


def test_many_messages_in_flight_are_all_answered(tagger):
    sent = [message(i, f"{i}: {QUERIES[i % 4]}") for i in range(200)]
    answers = list(tagger.TagStream(iter(sent), timeout=60))
    assert sorted(a.id for a in answers) == list(range(200))
    assert all(a.code == 0 and a.response.input_tokens > 0 for a in answers)


def test_the_stream_stays_open_between_messages(tagger):
    # a caller that sends, waits for the answer, then sends again (as the router does)
    outgoing: list = []
    ready = threading.Event()

    def requests():
        for i in range(3):
            ready.wait(10)
            ready.clear()
            yield outgoing[i]

    outgoing.extend(message(i, q) for i, q in enumerate(QUERIES[:3]))
    ready.set()
    answers = []
    for answer in tagger.TagStream(requests(), timeout=30):
        answers.append(answer.id)
        time.sleep(0.05)
        ready.set()
    assert answers == [0, 1, 2]


def test_bytes_that_do_not_parse_end_the_call_with_invalid_argument(stack):
    with grpc.insecure_channel(stack["tagger"].address) as channel:
        raw = channel.stream_stream("/tagrouter.tagger.v1.TaggerService/TagStream",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as refused:
            list(raw(iter([b"\xff\xff\xff not a message"]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not parse" in refused.value.details()


def test_the_router_tags_over_streams_and_a_tag_call_when_they_are_off(redis_url, stack):
    with grpc.insecure_channel(stack["router"].address) as channel:
        streamed = [router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=q), timeout=10)
                    for q in QUERIES]
    with running_stack(redis_url, TAGROUTER_TAG_STREAMS="0") as unary, \
            grpc.insecure_channel(unary["router"].address) as channel:
        called = [router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=q), timeout=10)
                  for q in QUERIES]
    assert not any(r.degraded for r in streamed + called)
    assert [r.tags for r in streamed] == [r.tags for r in called]
    assert [r.model for r in streamed] == [r.model for r in called]


def test_a_draining_tagger_ends_its_streams_at_once(redis_url):
    # SIGTERM: the stream's answers are sent and the call ends, well before the grace period
    # (TAGROUTER_GRACE_SECONDS, 10 here), so the router moves on to another tagger
    tagger = Process("tagger", service_env(redis_url, TAGROUTER_GRACE_SECONDS="10"))
    try:
        wait_serving(tagger.address)
        more = threading.Event()

        def requests():
            yield message(1, QUERIES[0])
            more.wait(20)  # the caller keeps its side open, as the router does

        with grpc.insecure_channel(tagger.address) as channel:
            stream = tagger_pb2_grpc.TaggerServiceStub(channel).TagStream(requests(), timeout=30)
            first = next(stream)
            tagger.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            rest = list(stream)  # ends when the tagger ends the call
            ended_after = time.monotonic() - signalled
            more.set()
        assert first.id == 1 and first.code == 0 and rest == []
        assert ended_after < 5, f"the stream held the drain for {ended_after:.1f} s"
    finally:
        tagger.stop()


def test_the_router_s_streams_retire_and_reopen_without_losing_a_query(stack):
    # max_age 0: every query retires the stream it would have used; each retired one answers what it
    # carries, then ends and is let go; a stream the tagger ended is reopened on the next query
    async def run():
        async with grpc.aio.insecure_channel(stack["tagger"].address) as channel:
            streams = TagStreams(channel, size=2, max_age_s=0.0)
            replies = await asyncio.gather(*[streams.tag(tagger_pb2.TagRequest(query=f"{i} {QUERIES[i % 4]}"), 10.0)
                                             for i in range(40)])
            for _ in range(100):  # bounded: the retired streams end once answered
                if not streams.retiring:
                    break
                await asyncio.sleep(0.05)
            left = streams.retiring
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await streams.tag(tagger_pb2.TagRequest(query=""), 10.0)
            await streams.close()
            return replies, left, refused.value
    replies, left, refused = asyncio.run(run())
    assert len(replies) == 40 and all(r.input_tokens > 0 for r in replies)
    assert left == 0, "retired streams were kept after they ended"
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.details() == "query is empty"


def test_a_message_past_its_time_is_dropped_with_deadline_exceeded(tagger):
    # a long query (tens of ms of encoder work) given 1 ms: the tagger gives up on it as a Tag call's
    # deadline would, and the stream goes on
    long_query = "Explain, step by step, how a relational database plans and runs a join. " * 20
    sent = [tagger_pb2.TagStreamRequest(id=1, request=tagger_pb2.TagRequest(query=long_query), timeout_ms=1),
            message(2, QUERIES[1])]
    answers = {a.id: a for a in tagger.TagStream(iter(sent), timeout=30)}
    assert answers[1].code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], answers[1]
    assert "within its 1 ms" in answers[1].message
    assert answers[2].code == 0 and answers[2].response.input_tokens > 0
