"""TaggerService: tags for a query from the int8 encoder and the canonical vocabulary."""
from __future__ import annotations

import asyncio
import functools
import time

import grpc

from services.common import tracing
from services.common.errors import Unavailable, status_for
from services.common.metrics import RPC_LATENCY, RPC_REQUESTS, TAG_CACHE, TAGGER_PHASE_LATENCY
from services.tagger.batching import MicroBatcher
from services.tagger.cache import TagCache, cache_key
from tagrouter.core.limits import check_batch, check_client_tags, check_query, check_request_chars
from tagrouter.core.tag_model import AlignedTag, TaggedQuery, TagModel
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

_CACHE_HIT, _CACHE_MISS = TAG_CACHE.labels("hit"), TAG_CACHE.labels("miss")
# TagStream's messages, counted and timed as RPCs are (the stream itself is one long call).
_STREAM_MESSAGES = functools.partial(RPC_REQUESTS.labels, "tagger", "TagStream.message")
_STREAM_LATENCY = functools.partial(RPC_LATENCY.labels, "tagger", "TagStream.message")
# Messages of one TagStream read ahead of their answers (the unary limit's default).
STREAM_IN_FLIGHT = 512
_TOKENISE_TIME, _ENCODE_TIME, _SELECT_TIME = (TAGGER_PHASE_LATENCY.labels(p) for p in ("tokenise", "encode", "select"))


def with_client_tags(tags: list[tagger_pb2.Tag], aligned: list[AlignedTag | None]) -> list[tagger_pb2.Tag]:
    """The query's tags plus the aligned client tags (a tag the query already has keeps the higher score)."""
    by_name = {t.name: t for t in tags}
    for a in aligned:
        if a is None:
            continue
        tag = by_name.get(a.name)
        if tag is None:
            tag = by_name[a.name] = tagger_pb2.Tag(name=a.name, level=a.level, score=a.score, client_tag=a.client_tag)
            tags.append(tag)
        elif not tag.client_tag:
            tag.score, tag.client_tag = max(tag.score, a.score), a.client_tag
    return tags


def deadline_in(seconds: float | None) -> float | None:
    """A caller's remaining time as a time.monotonic() deadline (None: no deadline)."""
    return None if seconds is None else time.monotonic() + seconds


class TaggerServicer(tagger_pb2_grpc.TaggerServiceServicer):
    def __init__(self, tagger: TagModel, max_batch: int = 32, cache_size: int = 10_000):
        self.tagger = tagger
        self.version = tagger.vocabulary.version
        self.batcher: MicroBatcher[TaggedQuery] = MicroBatcher(self._encode_and_select, max_batch=max_batch)
        # Client tags are aligned in their own batches (one encoder call for the unseen ones).
        self.aligner: MicroBatcher[AlignedTag | None] = MicroBatcher(self.tagger.align_client_tags, max_batch=max_batch)
        self.cache: TagCache[TaggedQuery] = TagCache(cache_size)
        self._ready = False
        self._draining = False
        self._stream_readers: set[asyncio.Task] = set()  # each open TagStream's reader, ended by end_streams

    async def start(self) -> None:
        """Ready after one real inference (and the tag names embedded for client-tag alignment)."""
        self.batcher.start()
        self.aligner.start()
        # Ready after real inferences at a short and a full-window length, so the first
        # callers do not pay for onnxruntime's first allocation at a new size.
        await self.batcher.submit("warm-up query: is the encoder loaded?")
        await self.batcher.submit("warm-up " * 300)
        await self.aligner.submit("warm-up client tag")
        self._ready = True

    async def stop(self) -> None:
        await self.batcher.close()
        await self.aligner.close()

    def _encode_and_select(self, texts: list[str]) -> list[TaggedQuery]:
        """TagModel.tag in its two phases, each a span when tracing is on."""
        with tracing.span("tagger.encode", {"tagrouter.texts": len(texts)}):
            encoded = self.tagger.encode(texts)
        started = time.perf_counter()
        with tracing.span("tagger.select_tags"):
            tagged = self.tagger.tag_encoded(texts, encoded.embeddings, encoded.token_counts, encoded.truncated,
                                             probs=encoded.tag_probs, features=encoded.features)
        _SELECT_TIME.observe(time.perf_counter() - started)
        _TOKENISE_TIME.observe(encoded.tokenise_s)
        _ENCODE_TIME.observe(encoded.run_s)
        return tagged

    async def _align(self, client_tags) -> list[AlignedTag | None]:
        return await self.aligner.submit_many(list(client_tags)) if client_tags else []

    def _response(self, tagged: TaggedQuery, per_level: int, client_tags=(), aligned=()) -> tagger_pb2.TagResponse:
        tags = tagged.tags
        if per_level and per_level < self.tagger.per_level:
            kept, seen = [], {}
            for name, level, score in tags:
                seen[level] = seen.get(level, 0) + 1
                if level == "attr" or seen[level] <= per_level:
                    kept.append((name, level, score))
            tags = kept
        return tagger_pb2.TagResponse(
            tags=with_client_tags([tagger_pb2.Tag(name=n, level=lv, score=s) for n, lv, s in tags], aligned),
            input_tokens=tagged.input_tokens, truncated=tagged.truncated, vocabulary_version=self.version,
            unaligned_client_tags=[c for c, a in zip(client_tags, aligned) if a is None],
            abstained=[tagger_pb2.Abstention(level=a.level, top=a.top, probability=a.probability, threshold=a.threshold)
                       for a in tagged.abstained])

    async def _tag(self, query: str, deadline: float | None = None) -> TaggedQuery:
        return (await self._tag_many([query], deadline))[0]

    async def _tag_many(self, queries: list[str], deadline: float | None = None) -> list[TaggedQuery]:
        """Tags from the exact-match cache, else from the micro-batcher (then cached): the misses
        go in as one submission, each distinct query once. deadline: the caller's (time.monotonic()),
        for the batcher to leave out a query it cannot encode in time."""
        keys = [cache_key(q) for q in queries]
        results: dict[bytes, TaggedQuery] = {}
        misses: dict[bytes, str] = {}  # cache key -> query
        for key, query in zip(keys, queries):
            if key in results or key in misses:
                continue
            tagged = self.cache.get(key)
            if tagged is not None:
                _CACHE_HIT.inc()
                results[key] = tagged
            else:
                _CACHE_MISS.inc()
                misses[key] = query
        tracing.annotate({"tagrouter.cache_hits": len(results), "tagrouter.cache_misses": len(misses)})
        if misses:
            for (key, _), tagged in zip(misses.items(), await self.batcher.submit_many(list(misses.values()), deadline)):
                self.cache.put(key, tagged)
                results[key] = tagged
        return [results[key] for key in keys]

    async def _align_many(self, client_tags: list[list[str]]) -> list[list[AlignedTag | None]]:
        """Each request's client tags aligned, all of them in one submission, each distinct tag once."""
        distinct = list(dict.fromkeys(t for tags in client_tags for t in tags))
        if not distinct:
            return [[] for _ in client_tags]
        aligned = dict(zip(distinct, await self.aligner.submit_many(distinct)))
        return [[aligned[t] for t in tags] for tags in client_tags]

    async def Tag(self, request, context):
        return await self._tag_request(request, deadline_in(context.time_remaining()))

    async def _tag_request(self, request, deadline: float | None):
        """Tag's work for one TagRequest, by a Tag call or a TagStream message."""
        check_query(request.query)
        check_client_tags(request.client_tags)
        check_request_chars(request.query, request.client_tags)
        if not self._ready:
            raise Unavailable("the encoder is still loading")
        if not request.client_tags:  # the common case: no tasks to gather, one loop pass less
            response = self._response(await self._tag(request.query, deadline), request.tags_per_level)
        else:
            tagged, aligned = await asyncio.gather(self._tag(request.query, deadline), self._align(request.client_tags))
            response = self._response(tagged, request.tags_per_level, request.client_tags, aligned)
        if tracing.enabled():
            tracing.annotate({"tagrouter.tags": len(response.tags), "tagrouter.input_tokens": response.input_tokens,
                              "tagrouter.truncated": response.truncated})
        return response

    async def TagStream(self, request_iterator, context):
        """Tag for each message, answered as each is done, in any order: a message's failure is its
        answer's status (as Tag would have ended), never the stream's. At most STREAM_IN_FLIGHT
        messages are read ahead of their answers being sent: past that the stream stops reading and
        HTTP/2 flow control holds the sender back."""
        answers: asyncio.Queue[tagger_pb2.TagStreamResponse | None] = asyncio.Queue()
        room = asyncio.Semaphore(STREAM_IN_FLIGHT)
        tasks: set[asyncio.Task] = set()

        async def answer(message) -> None:
            started = time.perf_counter()
            # the caller's deadline, as a Tag call has one: cancelled past it, its query leaves the batcher
            scope = asyncio.timeout(message.timeout_ms / 1000 if message.timeout_ms else None)
            try:
                async with scope:
                    response = await self._tag_request(
                        message.request, deadline_in(message.timeout_ms / 1000 if message.timeout_ms else None))
                reply = tagger_pb2.TagStreamResponse(id=message.id, response=response)
                code = grpc.StatusCode.OK
            except Exception as err:  # noqa: BLE001 - each message ends as Tag would have ended
                if scope.expired():
                    code, text = grpc.StatusCode.DEADLINE_EXCEEDED, f"not tagged within its {message.timeout_ms} ms"
                else:
                    code, text = status_for(err, "TagStream")
                reply = tagger_pb2.TagStreamResponse(id=message.id, code=code.value[0], message=text)
            answers.put_nowait(reply)
            _STREAM_MESSAGES(code.name).inc()
            _STREAM_LATENCY(code.name).observe(time.perf_counter() - started)

        async def read() -> None:
            try:
                try:
                    async for message in request_iterator:
                        await room.acquire()
                        task = asyncio.ensure_future(answer(message))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                except asyncio.CancelledError:
                    if not self._draining:  # the call itself is going: nothing more to answer
                        raise
                while tasks:  # the caller is done sending, or the tagger drains: answer what came, then end
                    try:
                        await asyncio.wait(set(tasks))
                    except asyncio.CancelledError:  # the drain began while this stream was finishing
                        if not self._draining:
                            raise
            finally:
                answers.put_nowait(None)

        reader = asyncio.ensure_future(read())
        self._stream_readers.add(reader)
        try:
            while (reply := await answers.get()) is not None:
                yield reply
                room.release()
            await reader  # a request that did not decode (or a broken stream) ends the call with its status
        finally:
            self._stream_readers.discard(reader)
            for task in (reader, *tasks):
                task.cancel()

    async def end_streams(self) -> None:
        """As the drain begins: each TagStream stops reading, answers what it has and ends, so that its
        caller moves on to another tagger instead of sending here for the whole grace period."""
        self._draining = True
        for reader in list(self._stream_readers):
            reader.cancel()

    async def TagBatch(self, request, context):
        check_batch(request.requests)
        if not self._ready:
            raise Unavailable("the encoder is still loading")
        tagged, aligned = await asyncio.gather(self._tag_many([r.query for r in request.requests],
                                                              deadline_in(context.time_remaining())),
                                               self._align_many([list(r.client_tags) for r in request.requests]))
        return tagger_pb2.TagBatchResponse(
            responses=[self._response(t, r.tags_per_level, r.client_tags, a)
                       for t, r, a in zip(tagged, request.requests, aligned)])
