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

A text may come with a deadline (the caller's, on time.monotonic()). Before each session call the
batcher estimates the call's time from the calls before it (seconds per padded character) and leaves
out the texts that would miss their deadline even if the call started now: they fail at once with
DEADLINE_EXCEEDED, so an overloaded tagger spends its encoder on texts whose callers will still be
waiting instead of on answers nobody reads (docs/BENCHMARKS.md, "Fourth step").
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import statistics
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from services.common import tracing
from services.common.aio import cancel_and_wait
from services.common.errors import DeadlineExceeded, ResourceExhausted
from services.common.metrics import TAGGER_BATCH_SIZE

R = TypeVar("R")

# A group's longest query may be at most this many times its shortest (in characters):
# padding a batch to its longest member otherwise wastes most of the work.
LENGTH_RATIO = 2.0
# Padded characters per session call (calls x longest member). Text past the encoder's
# 256-token window (about 1,200 characters) costs nothing, so lengths are capped there.
MAX_CELLS = 4096
WINDOW_CHARS = 1200
# The estimate of a call's time: the median seconds per padded character of the last COST_CALLS calls.
# A median, so that one slow call (a new shape's first allocation, a busy neighbour) does not make the
# batcher leave out texts that would have been in time.
COST_CALLS = 16
# A text left out because it would be late: a marker in the results, never a result.
_LATE = object()


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
        self._queue: asyncio.Queue[tuple[str, asyncio.Future, tuple | None, float | None]] | None = None
        # written by one call at a time (the worker runs one batch at a time), on the loop or the thread
        self._seconds_per_cell: collections.deque[float] = collections.deque(maxlen=COST_CALLS)
        self._worker: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self.batch_sizes: list[int] = []  # recent batch sizes, for metrics and tests

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def submit(self, text: str, deadline: float | None = None) -> R:
        return (await self.submit_many([text], deadline))[0]

    async def submit_many(self, texts: list[str], deadline: float | None = None) -> list[R]:
        """Results for `texts`, queued together. The queue limit admits or refuses a submission
        as a whole, by what already waits: a request within the request limits is never refused
        by an idle batcher, however many texts it brings (a TagBatch of 256 queries with 16 client
        tags each is 4,096 alignments). deadline (time.monotonic()): a text whose session call
        would end past it is not encoded and fails with DeadlineExceeded (module doc)."""
        if self._queue.qsize() >= self._max_queue:
            # Fail fast: a caller is better served by its fallback than by a growing queue.
            raise ResourceExhausted(f"tagger overloaded: {self._queue.qsize()} texts already wait for the encoder "
                                    f"(the limit is {self._max_queue})")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        # With tracing on, the caller's span and the time it queued, for the batch's spans.
        traced = (tracing.current_context(), tracing.now_ns()) if tracing.enabled() else None
        for text, future in zip(texts, futures):
            self._queue.put_nowait((text, future, traced, deadline))
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
            texts = [item[0] for item in batch]
            try:
                futures = [item[1] for item in batch]
                with self._batch_span(batch):
                    if len(texts) == 1:  # nothing queued behind it (a batch takes all that waits)
                        started = time.perf_counter()
                        results = self._run_batch(texts)  # on the loop: no thread hop (module doc)
                        self._timed(time.perf_counter() - started, 1, min(len(texts[0]), WINDOW_CHARS))
                    else:  # the thread runs in this context, so spans made inside join the batch span
                        results = await loop.run_in_executor(self._executor, contextvars.copy_context().run,
                                                             self._run_grouped, texts, futures,
                                                             [item[3] for item in batch])
            except Exception as err:  # noqa: BLE001 - every waiter gets the error, the worker lives on
                for item in batch:
                    if not item[1].done():
                        item[1].set_exception(err)
                continue
            for item, result in zip(batch, results):
                fut = item[1]
                if fut.done():
                    continue
                if result is _LATE:
                    fut.set_exception(DeadlineExceeded(
                        "not tagged: the tagger is overloaded, and its encoder could not finish this query within "
                        "the caller's deadline"))
                else:
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

    def _timed(self, seconds: float, rows: int, width: int) -> None:
        """One session call's time, into the estimate of seconds per padded character."""
        self._seconds_per_cell.append(seconds / max(1, rows * width))

    def _in_time(self, chunk: list[int], lengths: list[int], deadlines: list[float | None]) -> list[int]:
        """The chunk's texts whose deadline its call, started now, would meet by the estimate."""
        if not self._seconds_per_cell:
            return chunk
        width = max(min(lengths[i], WINDOW_CHARS) for i in chunk)
        ends = time.monotonic() + statistics.median(self._seconds_per_cell) * len(chunk) * width
        return [i for i in chunk if deadlines[i] is None or deadlines[i] >= ends]

    def _run_grouped(self, texts: list[str], futures: list[asyncio.Future] | None = None,
                     deadlines: list[float | None] | None = None) -> list[R]:
        """Results in `texts` order (None for a query whose caller gave up before its call ran,
        _LATE for one whose call would end past its deadline)."""
        results: list = [None] * len(texts)
        lengths = [len(t) for t in texts]
        for group in length_groups(texts):
            for chunk in split_by_cells(group, lengths, self._max_cells):
                if futures is not None:
                    # A caller past its deadline has been cancelled: under overload, encoding its
                    # query anyway would only make the callers behind it miss theirs too.
                    chunk = [i for i in chunk if not futures[i].done()]
                if deadlines is not None and chunk:
                    in_time = self._in_time(chunk, lengths, deadlines)
                    for i in set(chunk) - set(in_time):
                        results[i] = _LATE
                    chunk = in_time
                if not chunk:
                    continue
                started = time.perf_counter()
                for i, result in zip(chunk, self._run_batch([texts[i] for i in chunk])):
                    results[i] = result
                self._timed(time.perf_counter() - started, len(chunk),
                            max(min(lengths[i], WINDOW_CHARS) for i in chunk))
        return results
