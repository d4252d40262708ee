"""The router's downstreams: the tagger and the scorer, with their health."""
from __future__ import annotations

import asyncio
import itertools
import math
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import tracing
from services.common.channels import open_channel
from tagrouter.scorer.v1 import scorer_pb2_grpc
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc


class Downstreams:
    """Stubs for the router's two downstreams."""

    def __init__(self, tagger_addr: str, scorer_addr: str, credentials: grpc.ChannelCredentials | None = None,
                 tag_streams: int = 0, tag_timeout_s: float = 60.0):
        self.tagger_channel = open_channel(tagger_addr, credentials)
        self.scorer_channel = open_channel(scorer_addr, credentials)
        self.tagger = tagger_pb2_grpc.TaggerServiceStub(self.tagger_channel)
        self.scorer = scorer_pb2_grpc.ScorerServiceStub(self.scorer_channel)
        self.tagger_health = health_pb2_grpc.HealthStub(self.tagger_channel)
        self.scorer_health = health_pb2_grpc.HealthStub(self.scorer_channel)
        # Tag over streams (0: a Tag call per query)
        self.tag_streams = (TagStreams(self.tagger_channel, tag_streams, longest_wait_s=tag_timeout_s + 1.0)
                            if tag_streams > 0 else None)

    async def serving(self, timeout: float = 1.0) -> dict[str, bool]:
        """Whether each downstream reports SERVING right now."""
        result = {}
        for name, stub in (("tagger", self.tagger_health), ("scorer", self.scorer_health)):
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                result[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                result[name] = False
        return result

    async def tag(self, request: tagger_pb2.TagRequest, timeout: float) -> tagger_pb2.TagResponse:
        """Tags for one query, over a stream when there are any (grpc.aio.AioRpcError either way); a
        Tag call when tracing is on, whose metadata carries the trace to the tagger."""
        if self.tag_streams is not None and not tracing.enabled():
            return await self.tag_streams.tag(request, timeout)
        return await self.tagger.Tag(request, timeout=timeout)

    async def close(self) -> None:
        if self.tag_streams is not None:
            await self.tag_streams.close()
        await self.tagger_channel.close()
        await self.scorer_channel.close()


class TagStreams:
    """Tag over a few long-lived TagStream calls instead of one call per query: measured here, a
    message on an open stream costs the hop a third of a unary call's set-up (docs/BENCHMARKS.md).

    Queries take the `size` streams in turn; each stream is opened on first use and again after it
    ends. A query whose stream ends before its answer (the tagger drains or restarts, the connection
    breaks) is sent once more on a fresh stream while its time lasts: tagging has no side effects.
    With a round_robin channel each stream lands on the next tagger, and a stream retires after
    `max_age_s` so that queries spread over taggers added since; a retired stream is cancelled
    `longest_wait_s` later at the latest (no query waits longer). Each message carries the query's
    remaining time, after which the tagger drops it. Errors are grpc.aio.AioRpcError, as from the
    stub's Tag: the router treats both alike."""

    def __init__(self, channel: grpc.aio.Channel, size: int = 4, max_age_s: float = 60.0,
                 longest_wait_s: float = 60.0):
        self._call_factory = tagger_pb2_grpc.TaggerServiceStub(channel).TagStream
        self._slots: list[_TagStream | None] = [None] * size
        self._turn = itertools.count()
        self._ids = itertools.count(1)
        self._retiring: set[_TagStream] = set()  # the loop keeps only weak references to their tasks
        self.max_age_s = max_age_s
        self.longest_wait_s = longest_wait_s

    def _stream(self) -> _TagStream:
        slot = next(self._turn) % len(self._slots)
        stream = self._slots[slot]
        if stream is None or stream.ended or stream.age() > self.max_age_s:
            if stream is not None and not stream.ended:  # held until its queries in flight are answered
                self._retiring.add(stream)
                stream.retire(self._retiring.discard, self.longest_wait_s)
            try:
                call = self._call_factory()
            except (grpc.aio.UsageError, RuntimeError) as err:  # the channel is closing: the router stops
                raise _StreamEnded(grpc.StatusCode.UNAVAILABLE, f"no tag stream: {err}") from None
            stream = self._slots[slot] = _TagStream(call)
        return stream

    async def tag(self, request: tagger_pb2.TagRequest, timeout: float) -> tagger_pb2.TagResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in range(2):
            try:
                stream = self._stream()
                return await stream.tag(next(self._ids), request, deadline)
            except _StreamEnded as ended:
                if attempt == 1 or loop.time() >= deadline:
                    raise _failure(ended.code, ended.details) from None
        raise AssertionError("unreachable")

    @property
    def retiring(self) -> int:
        return len(self._retiring)

    async def close(self) -> None:
        for stream in [*self._slots, *self._retiring]:
            if stream is not None:
                stream.cancel()


def _failure(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class _StreamEnded(Exception):
    """The query's stream ended before its answer: the query may go again on another."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class _TagStream:
    """One TagStream call: queries written one at a time, answers matched to their callers by id."""

    def __init__(self, call):
        self.call = call
        self.opened = time.monotonic()
        self.ended = False
        self._retired = False
        self._closing: asyncio.Task | None = None  # a reference: the loop holds tasks weakly
        self._waiting: dict[int, asyncio.Future] = {}
        self._write_lock = asyncio.Lock()  # a call takes one write at a time
        self._reader = asyncio.ensure_future(self._read())

    def age(self) -> float:
        return time.monotonic() - self.opened

    async def tag(self, query_id: int, request: tagger_pb2.TagRequest, deadline: float) -> tagger_pb2.TagResponse:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting[query_id] = answer
        try:
            async with asyncio.timeout_at(deadline):
                # shielded: a Route cancelled or out of time mid-write must not cut a message in half
                await asyncio.shield(self._send(query_id, request, deadline))
                reply = await answer
        except TimeoutError:
            raise _failure(grpc.StatusCode.DEADLINE_EXCEEDED, "no tags within the tagger's deadline") from None
        except (asyncio.InvalidStateError, grpc.aio.UsageError, grpc.aio.AioRpcError) as err:
            self.ended = True  # the call ended under the write
            raise _StreamEnded(grpc.StatusCode.UNAVAILABLE, f"the tag stream ended: {err}") from None
        finally:
            self._waiting.pop(query_id, None)
        if reply.code != grpc.StatusCode.OK.value[0]:
            raise _failure(_status_code(reply.code), reply.message)
        return reply.response

    async def _send(self, query_id: int, request: tagger_pb2.TagRequest, deadline: float) -> None:
        async with self._write_lock:
            left_ms = math.ceil((deadline - asyncio.get_running_loop().time()) * 1000)
            if query_id not in self._waiting or left_ms <= 0:
                return  # its caller gave up while the write waited its turn: the tagger need not see it
            await self.call.write(tagger_pb2.TagStreamRequest(id=query_id, request=request, timeout_ms=left_ms))

    async def _read(self) -> None:
        status, details = grpc.StatusCode.UNAVAILABLE, "the tag stream ended"
        try:
            async for reply in self.call:
                answer = self._waiting.get(reply.id)
                if answer is not None and not answer.done():
                    answer.set_result(reply)
        except grpc.aio.AioRpcError as err:
            status, details = err.code(), f"the tag stream ended: {err.details()}"
        except asyncio.CancelledError:
            details = "the tag stream was closed"
        finally:
            self.ended = True
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_exception(_StreamEnded(status, details))

    def retire(self, on_end, longest_wait_s: float) -> None:
        """No more queries: the tagger answers those in flight, then ends the call (cancelled after
        `longest_wait_s` if it has not: no query waits longer); then on_end(self)."""
        if not self._retired and not self.ended:
            self._retired = True
            self._closing = asyncio.ensure_future(self._done_writing())
            timer = asyncio.get_running_loop().call_later(longest_wait_s, self.cancel)
            self._reader.add_done_callback(lambda _: (timer.cancel(), on_end(self)))

    async def _done_writing(self) -> None:
        try:
            async with self._write_lock:
                await self.call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass  # it ended already

    def cancel(self) -> None:
        self.call.cancel()
        self._reader.cancel()


def _status_code(number: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == number), grpc.StatusCode.UNKNOWN)
