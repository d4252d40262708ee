"""TaggerService: tags for a query from the int8 encoder and the canonical vocabulary."""
from __future__ import annotations

import asyncio

from services.common.errors import InvalidArgument, Unavailable
from services.common.metrics import TAG_CACHE
from services.tagger.batching import MicroBatcher
from services.tagger.cache import TagCache, cache_key
from services.tagger.tagger import TaggedQuery, Tagger
from tagrouter.tagger.v1 import tagger_pb2, tagger_pb2_grpc

MAX_QUERY_CHARS = 100_000  # past the encoder's window anyway; refuse rather than tokenise megabytes
MAX_BATCH_REQUESTS = 256
_CACHE_HIT, _CACHE_MISS = TAG_CACHE.labels("hit"), TAG_CACHE.labels("miss")


def check_query(query: str, where: str = "query") -> None:
    if not query.strip():
        raise InvalidArgument(f"{where} is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"{where} has {len(query)} characters, at most {MAX_QUERY_CHARS}")


class TaggerServicer(tagger_pb2_grpc.TaggerServiceServicer):
    def __init__(self, tagger: Tagger, max_batch: int = 32, cache_size: int = 10_000):
        self.tagger = tagger
        self.version = tagger.vocabulary.version
        self.batcher: MicroBatcher[TaggedQuery] = MicroBatcher(self.tagger.tag, max_batch=max_batch)
        self.cache: TagCache[TaggedQuery] = TagCache(cache_size)
        self._ready = False

    async def start(self) -> None:
        """Ready after one real inference."""
        self.batcher.start()
        await self.batcher.submit("warm-up query: is the encoder loaded?")
        self._ready = True

    async def stop(self) -> None:
        await self.batcher.close()

    def _response(self, tagged: TaggedQuery, per_level: int) -> tagger_pb2.TagResponse:
        tags = tagged.tags
        if per_level and per_level < self.tagger.per_level:
            kept, seen = [], {}
            for name, level, score in tags:
                seen[level] = seen.get(level, 0) + 1
                if level == "attr" or seen[level] <= per_level:
                    kept.append((name, level, score))
            tags = kept
        return tagger_pb2.TagResponse(
            tags=[tagger_pb2.Tag(name=n, level=lv, score=s) for n, lv, s in tags],
            input_tokens=tagged.input_tokens, truncated=tagged.truncated, vocabulary_version=self.version)

    async def _tag(self, query: str) -> TaggedQuery:
        """Tags from the exact-match cache, else from the micro-batcher (then cached)."""
        key = cache_key(query)
        tagged = self.cache.get(key)
        if tagged is not None:
            _CACHE_HIT.inc()
            return tagged
        _CACHE_MISS.inc()
        tagged = await self.batcher.submit(query)
        self.cache.put(key, tagged)
        return tagged

    async def Tag(self, request, context):
        check_query(request.query)
        if not self._ready:
            raise Unavailable("the encoder is still loading")
        return self._response(await self._tag(request.query), request.tags_per_level)

    async def TagBatch(self, request, context):
        if len(request.requests) > MAX_BATCH_REQUESTS:
            raise InvalidArgument(f"requests: {len(request.requests)} queries, at most {MAX_BATCH_REQUESTS}")
        for i, r in enumerate(request.requests):
            check_query(r.query, f"requests[{i}].query")
        if not self._ready:
            raise Unavailable("the encoder is still loading")
        tagged = await asyncio.gather(*(self._tag(r.query) for r in request.requests))
        return tagger_pb2.TagBatchResponse(
            responses=[self._response(t, r.tags_per_level) for t, r in zip(tagged, request.requests)])
