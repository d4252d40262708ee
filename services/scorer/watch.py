"""WatchWeights: the active weights pushed to the routers, whole, whenever they change.

One poll of Redis per scorer process, however many routers watch: every POLL_SECONDS the
broadcast reads (active version, generation) (store.change_marker, one small round trip),
and only when that changed does it read the weights and hand the same message to every
watcher. Loads and counted feedback bump the generation, also through other scorer replicas,
so a router's copy is at most about POLL_SECONDS behind Redis. While Redis is unreachable the
watchers' streams end with UNAVAILABLE: a router then calls Score, which fails the same way,
so its answers are flagged degraded exactly as without the copy.

No lock is held while a watcher waits: each publish resolves the current `_changed` future
and puts a fresh one in its place, and a watcher waits on it with `asyncio.wait`, which never
cancels the future it watches. A watcher cancelled at any moment (its stream gone, its
deadline passed, the server stopping) leaves nothing behind that another watcher or the
publisher could block on. (The former `asyncio.wait_for` around `Condition.wait` could leave
the condition's lock held when cancelled on Python 3.11, freezing every watcher for good.)
"""
from __future__ import annotations

import asyncio
import logging

from services.common.errors import UNREACHABLE, Unavailable
from services.common.metrics import REDIS_UP
from services.scorer.store import WeightStore
from tagrouter.scorer.v1 import scorer_pb2

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
HEARTBEAT_SECONDS = 1.0


class WeightsBroadcast:
    def __init__(self, store: WeightStore):
        self.store = store
        self._changed: asyncio.Future | None = None  # resolved (and replaced) at every publish and at close
        self._update: scorer_pb2.WeightsUpdate | None = None
        self._sequence = 0  # +1 per new update or error, so a watcher knows what it has sent
        self._error: str | None = None
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
            self._poller = asyncio.create_task(self._poll())
        sent = 0
        try:
            while True:
                if self._sequence == sent and not self._closed:
                    # asyncio.wait neither cancels the shared future nor holds anything when cancelled
                    await asyncio.wait((self._change(),), timeout=HEARTBEAT_SECONDS)
                if self._closed:
                    return  # the scorer is shutting down: the watcher moves to another one
                sequence, update, error = self._sequence, self._update, self._error
                if sequence == sent:
                    yield scorer_pb2.WeightsUpdate(heartbeat_seconds=HEARTBEAT_SECONDS)
                    continue
                sent = sequence
                if error is not None:
                    raise Unavailable(error)
                if update is not None:
                    yield update
        finally:
            self._watchers -= 1

    async def close(self) -> None:
        """Ends every watch (at shutdown) and refuses new ones."""
        self._closed = True
        self._announce()
        if self._poller is not None:
            self._poller.cancel()

    async def _publish(self, update: scorer_pb2.WeightsUpdate | None, error: str | None) -> None:
        self._update, self._error = update, error
        self._sequence += 1
        self._announce()

    async def _poll(self) -> None:
        """Runs while anyone watches."""
        while self._watchers > 0:
            try:
                marker = await self.store.change_marker()
                REDIS_UP.set(1)
                if marker != self._marker:
                    await self._read(marker)
            except UNREACHABLE as err:
                log.warning("WatchWeights: Redis unreachable: %s", err)
                REDIS_UP.set(0)
                self._marker = None  # read everything again once Redis is back
                await self._publish(None, f"backing store unreachable: {type(err).__name__}")
            except Exception:  # noqa: BLE001 - keep polling; the watchers hear of it
                log.exception("WatchWeights: reading the weights failed")
                self._marker = None
                await self._publish(None, "reading the weights failed; see the scorer's log")
            await asyncio.sleep(POLL_SECONDS)

    async def _read(self, marker: tuple[str | None, int]) -> None:
        version = marker[0]
        if version is None:
            self._marker = marker
            await self._publish(None, "no weights are loaded")
            return
        weights = await self.store.read_weights()
        # A load that switched versions while we read could leave a mix: read again next poll.
        # Feedback in the meantime is harmless (counts only grow); the changed generation
        # brings a fresh read.
        if weights is None or weights.version != version:
            return
        self._marker = marker
        await self._publish(scorer_pb2.WeightsUpdate(weights=weights.to_proto(),
                                                     heartbeat_seconds=HEARTBEAT_SECONDS), None)
