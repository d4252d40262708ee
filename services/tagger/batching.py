"""Dynamic micro-batching: requests that arrive together share one onnxruntime call.

A batch is whatever queued while the previous one ran (no added wait at low load), capped
at `max_batch`, split into groups of similar length so short queries are not padded to a
long one, and each group into session calls of at most `max_cells` padded characters:
measured here, batching long queries gains nothing past two or three per call (attention
grows with the square of the length) while a batch of 32 long ones holds all 32 callers
for half a second.

Batches of two or more run on one worker thread, so the event loop takes new requests
and health checks while onnxruntime runs. A lone query runs on the event loop itself:
nothing else is waiting, and the thread hop (a wake-up, a GIL hand-over and a loop
wake-up) costs about 0.2 ms at the median and milliseconds at the tail on a busy
2-core machine, a tenth of the encoder's own time (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
from collections.abc import Callable
from typing import Generic, TypeVar

from services.common import tracing
from services.common.aio import cancel_and_wait
from services.common.errors import ResourceExhausted
from services.common.metrics import TAGGER_BATCH_SIZE

R = TypeVar("R")

# A group's longest query may be at most this many times its shortest (in characters):
# padding a batch to its longest member otherwise wastes most of the work.
LENGTH_RATIO = 2.0
# Padded characters per session call (calls x longest member). Text past the encoder's
# 256-token window (about 1,200 characters) costs nothing, so lengths are capped there.
MAX_CELLS = 4096
WINDOW_CHARS = 1200


def split_by_cells(group: list[int], lengths: list[int], max_cells: int = MAX_CELLS) -> list[list[int]]:
    """A length-sorted group cut into runs whose padded size (count x longest) fits `max_cells`."""
    chunks: list[list[int]] = []
    for i in group:
        width = min(lengths[i], WINDOW_CHARS)
        if chunks and (len(chunks[-1]) + 1) * width <= max_cells:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def length_groups(texts: list[str], max_ratio: float = LENGTH_RATIO) -> list[list[int]]:
    """Indices of texts grouped by similar length, shortest first."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and len(texts[i]) <= max_ratio * max(1, len(texts[groups[-1][0]])):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class MicroBatcher(Generic[R]):
    """Collects concurrent `submit` calls into batches for `run_batch` (list in, list out)."""

    def __init__(self, run_batch: Callable[[list[str]], list[R]], max_batch: int = 32, max_queue: int = 256,
                 max_cells: int = MAX_CELLS):
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._max_cells = max_cells
        self._queue: asyncio.Queue[tuple[str, asyncio.Future, tuple | None]] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self.batch_sizes: list[int] = []  # recent batch sizes, for metrics and tests

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def submit(self, text: str) -> R:
        return (await self.submit_many([text]))[0]

    async def submit_many(self, texts: list[str]) -> list[R]:
        """Results for `texts`, queued together. The queue limit admits or refuses a submission
        as a whole, by what already waits: a request within the request limits is never refused
        by an idle batcher, however many texts it brings (a TagBatch of 256 queries with 16 client
        tags each is 4,096 alignments)."""
        if self._queue.qsize() >= self._max_queue:
            # Fail fast: a caller is better served by its fallback than by a growing queue.
            raise ResourceExhausted(f"tagger overloaded: {self._queue.qsize()} texts already wait for the encoder "
                                    f"(the limit is {self._max_queue})")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        # With tracing on, the caller's span and the time it queued, for the batch's spans.
        traced = (tracing.current_context(), tracing.now_ns()) if tracing.enabled() else None
        for text, future in zip(texts, futures):
            self._queue.put_nowait((text, future, traced))
        if len(futures) == 1:  # the common case (Tag): no gather
            return [await futures[0]]
        return list(await asyncio.gather(*futures))  # cancelling it cancels the futures: the worker skips them

    async def close(self) -> None:
        await cancel_and_wait(self._worker)
        self._executor.shutdown(wait=True)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [item for item in batch if not item[1].cancelled()]
            if not batch:
                continue
            self.batch_sizes = (self.batch_sizes + [len(batch)])[-1000:]
            TAGGER_BATCH_SIZE.observe(len(batch))
            texts = [text for text, _, _ in batch]
            try:
                futures = [fut for _, fut, _ in batch]
                with self._batch_span(batch):
                    if len(texts) == 1:  # nothing queued behind it (a batch takes all that waits)
                        results = self._run_batch(texts)  # on the loop: no thread hop (module doc)
                    else:  # the thread runs in this context, so spans made inside join the batch span
                        results = await loop.run_in_executor(self._executor, contextvars.copy_context().run,
                                                             self._run_grouped, texts, futures)
            except Exception as err:  # noqa: BLE001 - every waiter gets the error, the worker lives on
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for (_, fut, _), result in zip(batch, results):
                if not fut.done():
                    fut.set_result(result)

    @staticmethod
    def _batch_span(batch):
        """Each traced caller's wait for the encoder as a `tagger.queue` span, and the batch's run as a
        `tagger.batch` span under the first traced caller, linked to the others (a no-op when off)."""
        # one entry per caller: a TagBatch queues many texts under one (contexts are dicts: keyed by id)
        traced = list({id(item[2][0]): item[2] for item in batch if item[2] is not None and item[2][0] is not None}
                      .values())
        if not traced:
            return contextlib.nullcontext()
        now = tracing.now_ns()
        for ctx, queued_ns in traced:
            tracing.record_span("tagger.queue", queued_ns, now, {"tagrouter.batch_size": len(batch)}, context=ctx)
        return tracing.span("tagger.batch", {"tagrouter.batch_size": len(batch)}, context=traced[0][0],
                            links=[tracing.link_to(ctx) for ctx, _ in traced[1:]])

    def _run_grouped(self, texts: list[str], futures: list[asyncio.Future] | None = None) -> list[R]:
        """Results in `texts` order (None for a query whose caller gave up before its call ran)."""
        results: list = [None] * len(texts)
        lengths = [len(t) for t in texts]
        for group in length_groups(texts):
            for chunk in split_by_cells(group, lengths, self._max_cells):
                if futures is not None:
                    # A caller past its deadline has been cancelled: under overload, encoding its
                    # query anyway would only make the callers behind it miss theirs too.
                    chunk = [i for i in chunk if not futures[i].done()]
                    if not chunk:
                        continue
                for i, result in zip(chunk, self._run_batch([texts[i] for i in chunk])):
                    results[i] = result
        return results
