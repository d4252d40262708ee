"""WatchWeights: the active weights pushed to the routers, whole once, then as deltas.

One poll of Redis per scorer process, however many routers watch: every POLL_SECONDS the
broadcast reads (active version, generation) (store.change_marker, one small round trip), and
only when that changed does it read what changed: with deltas on (TAGROUTER_WATCH_DELTAS, the
default) the cells that Feedback changed since the last generation it saw (store.changes, one
script call, atomic) when the version is the same, else the whole weights. Every weights or delta
message is numbered (`sequence`); a delta names the message it applies on (`base_sequence`). A new
watcher, or one that fell more than HISTORY deltas behind, gets the whole weights (built from the
broadcast's own up-to-date copy, without reading Redis again), then the deltas that follow. A
router that sees a gap drops its copy and watches again, which starts with the whole weights.
Loads switch versions atomically in Redis, and a new version is always sent whole.
While Redis is unreachable the watchers' streams end with UNAVAILABLE: a router then calls
Score, which fails the same way, so its answers are flagged degraded exactly as without the copy.

No lock is held while a watcher waits: each publish resolves the current `_changed` future
and puts a fresh one in its place, and a watcher waits on it with `asyncio.wait`, which never
cancels the future it watches. A watcher cancelled at any moment (its stream gone, its
deadline passed, the server stopping) leaves nothing behind that another watcher or the
publisher could block on. (The former `asyncio.wait_for` around `Condition.wait` could leave
the condition's lock held when cancelled on Python 3.11, freezing every watcher for good.)
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time

from services.common.errors import UNREACHABLE, Unavailable
from services.common.metrics import REDIS_UP, WATCH_MESSAGES
from services.scorer.store import WeightStore
from tagrouter.core.scoring import COUNT_FIELDS
from tagrouter.core.weights import Weights
from tagrouter.scorer.v1 import scorer_pb2

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
HEARTBEAT_SECONDS = 1.0
HISTORY = 16  # deltas kept for a watcher that fell behind; further behind, it gets the whole weights
MAX_DELTA_CELLS = 20_000  # more changed cells than this since the last poll: read the whole weights


class WeightsBroadcast:
    def __init__(self, store: WeightStore, deltas: bool = True):
        self.store = store
        self.deltas = deltas
        self._changed: asyncio.Future | None = None  # resolved (and replaced) at every publish and at close
        self._weights: Weights | None = None  # the broadcast's copy, as of `_sequence`
        self._full: scorer_pb2.WeightsUpdate | None = None  # the whole weights as of `_sequence`, built on demand
        self._history: collections.deque = collections.deque(maxlen=HISTORY)  # recent delta messages
        self._sequence = 0  # +1 per weights or delta message and per error, so a watcher knows what it has sent
        self._error: str | None = None
        self._seen_ns = time.time_ns()  # before the last read of Redis that the copy reflects
        self._changes_after = self._seen_ns  # the message numbered `_sequence` carries changes made after this
        self._marker: tuple[str | None, int] | None = None
        self._watchers = 0
        self._poller: asyncio.Task | None = None
        self._closed = False

    @property
    def watchers(self) -> int:
        return self._watchers

    def _change(self) -> asyncio.Future:
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _announce(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    async def watch(self):
        """Yields WeightsUpdate messages for one watcher until it goes away; raises Unavailable
        when the weights cannot be read."""
        if self._closed:
            raise Unavailable("the scorer is shutting down")
        self._watchers += 1
        if self._poller is None or self._poller.done():
            self._forget()
            self._poller = asyncio.create_task(self._poll())
        sent = 0
        try:
            while True:
                if self._sequence == sent and not self._closed:
                    # asyncio.wait neither cancels the shared future nor holds anything when cancelled
                    await asyncio.wait((self._change(),), timeout=HEARTBEAT_SECONDS)
                if self._closed:
                    return  # the scorer is shutting down: the watcher moves to another one
                if self._sequence == sent:
                    yield scorer_pb2.WeightsUpdate(heartbeat_seconds=HEARTBEAT_SECONDS, sequence=sent)
                    continue
                if self._error is not None:
                    raise Unavailable(self._error)
                if self._weights is None:
                    sent = self._sequence
                    continue
                missed = [d for d in self._history if d.delta.base_sequence >= sent]
                if sent and missed and missed[0].delta.base_sequence == sent:
                    for update in missed:  # in order, each on top of the one before
                        yield update
                        WATCH_MESSAGES.labels("delta").inc()
                    sent = missed[-1].sequence
                else:
                    update = self._whole()
                    yield update
                    WATCH_MESSAGES.labels("full").inc()
                    sent = update.sequence
        finally:
            self._watchers -= 1

    def _forget(self) -> None:
        """Drops what the last poller saw: with nobody watching it stopped, and its last word may
        be stale by now (say "no weights are loaded" from before the scorer loaded them). A new
        watcher then waits for the new poller's first read instead of hearing that."""
        self._marker, self._weights, self._error, self._full = None, None, None, None
        self._history.clear()

    async def close(self) -> None:
        """Ends every watch (at shutdown) and refuses new ones."""
        self._closed = True
        self._announce()
        if self._poller is not None:
            self._poller.cancel()

    def _whole(self) -> scorer_pb2.WeightsUpdate:
        if self._full is None or self._full.sequence != self._sequence:
            self._full = scorer_pb2.WeightsUpdate(weights=self._weights.to_proto(), heartbeat_seconds=HEARTBEAT_SECONDS,
                                                  sequence=self._sequence, changes_after_unix_nanos=self._changes_after)
        return self._full

    def _publish(self, weights: Weights | None, error: str | None, delta: scorer_pb2.WeightsDelta | None = None,
                 seen_ns: int = 0) -> None:
        changes_after = self._changes_after = self._seen_ns
        self._weights, self._error = weights, error
        self._sequence += 1
        self._seen_ns = seen_ns or self._seen_ns
        if delta is None:
            self._history.clear()
        else:
            delta.base_sequence = self._sequence - 1
            self._history.append(scorer_pb2.WeightsUpdate(
                delta=delta, heartbeat_seconds=HEARTBEAT_SECONDS, sequence=self._sequence,
                changes_after_unix_nanos=changes_after))
        self._announce()

    async def _poll(self) -> None:
        """Runs while anyone watches."""
        while self._watchers > 0:
            started = time.time_ns()
            try:
                marker = await self.store.change_marker()
                REDIS_UP.set(1)
                if marker != self._marker:
                    await self._read(marker, started)
                elif self._error is None:
                    self._seen_ns = started
            except UNREACHABLE as err:
                log.warning("WatchWeights: Redis unreachable: %s", err)
                REDIS_UP.set(0)
                self._marker = None  # read everything again once Redis is back
                self._publish(None, f"backing store unreachable: {type(err).__name__}")
            except Exception:  # noqa: BLE001 - keep polling; the watchers hear of it
                log.exception("WatchWeights: reading the weights failed")
                self._marker = None
                self._publish(None, "reading the weights failed; see the scorer's log")
            await asyncio.sleep(POLL_SECONDS)

    async def _read(self, marker: tuple[str | None, int], started: int) -> None:
        version = marker[0]
        if version is None:
            self._marker = marker
            self._publish(None, "no weights are loaded")
            return
        if self.deltas and self._weights is not None and self._marker is not None and self._marker[0] == version:
            active, generation, cells = await self.store.changes(version, self._marker[1], MAX_DELTA_CELLS)
            if active == version and cells is not None:
                self._marker = (version, generation)
                self._publish(self._weights, None, self._apply(cells), started)
                return
        weights = await self.store.read_weights()
        # A load that switched versions while we read could leave a mix: read again next poll.
        # Feedback in the meantime is harmless (counts only grow, and the next delta carries
        # whole rows changed after `marker`, so re-sending one is harmless too).
        if weights is None or weights.version != version:
            return
        self._marker = marker
        self._publish(weights, None, None, started)

    def _apply(self, cells: list) -> scorer_pb2.WeightsDelta:
        """Writes the changed cells into the broadcast's copy; the delta message that carries them."""
        counts = self._weights.counts
        delta = scorer_pb2.WeightsDelta(version=self._weights.version)
        for tag, model, row in cells:
            if row is None:
                counts.get(tag, {}).pop(model, None)
                row = [0.0] * len(COUNT_FIELDS)  # left out, as a full read leaves it out
            else:
                counts.setdefault(tag, {})[model] = row
            delta.counts.add(tag=tag, model=model, **dict(zip(COUNT_FIELDS, row)))
        return delta
