"""The router's copy of the scorer's weights, kept current by the scorer's WatchWeights stream.

With a current copy, a Route scores in-process with the same pure functions as the scorer's
Score (tagrouter/core/pool.py): one gRPC hop and one Redis round trip fewer per query.
The copy counts as current only while the stream is up and has spoken within three
heartbeats; otherwise the router calls Score, so a stopped scorer or an unreachable Redis
still gives degraded answers, as before the copy existed.
The stream starts with the whole weights and then carries deltas (the changed cells), each on
top of the numbered message before it (tagrouter/core/counts_copy.py applies them); a delta
that does not follow on what the copy holds drops the copy and watches again, which starts whole.
"""
from __future__ import annotations

import asyncio
import logging
import time

import grpc

from services.common import metrics
from services.common.aio import cancel_and_wait
from tagrouter.core.counts_copy import CountsCopy
from tagrouter.core.pool import ScoringTable
from tagrouter.core.scoring import COUNT_FIELDS
from tagrouter.core.weights import Weights, WeightsError
from tagrouter.scorer.v1 import scorer_pb2

log = logging.getLogger(__name__)

STALE_AFTER_HEARTBEATS = 3
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0)  # then every second: the channel's own reconnect cap


class OutOfStep(Exception):
    """A delta that does not apply on the copy held: watch again, from the whole weights."""


class WeightsMirror:
    """Follows WatchWeights in the background; `current()` is the copy while it can be trusted."""

    def __init__(self, scorer_stub):
        self.stub = scorer_stub
        self._table: ScoringTable | None = None
        self._copy: CountsCopy | None = None
        self._sequence = 0  # of the last weights or delta message applied
        self._heard_at = 0.0
        self._stale_after = STALE_AFTER_HEARTBEATS * 1.0
        self._task: asyncio.Task | None = None
        metrics.WEIGHTS_COPY_AGE.set_function(lambda: time.monotonic() - self._heard_at if self._table else float("inf"))

    def current(self) -> ScoringTable | None:
        if self._table is not None and time.monotonic() - self._heard_at <= self._stale_after:
            return self._table
        return None

    async def wait_current(self, timeout: float) -> bool:
        """Whether a current copy arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.current() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.current() is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow())

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                async for update in self.stub.WatchWeights(scorer_pb2.WatchWeightsRequest()):
                    self._heard(update)
                    failures = 0
                log.warning("WatchWeights ended; scoring through Score until it is back")
            except grpc.aio.AioRpcError as err:
                if failures == 0:  # a warning when a copy is lost; at start-up, waiting is normal
                    log.log(logging.WARNING if self._table is not None else logging.INFO,
                            "WatchWeights: %s (%s); scoring through Score until it is back",
                            err.code().name, err.details())
            except WeightsError as err:  # the scorer validates on load, so this is a bug somewhere
                log.error("WatchWeights sent weights that do not validate: %s", err)
            except OutOfStep as err:
                log.warning("WatchWeights: %s; watching again for the whole weights", err)
            except Exception:  # noqa: BLE001 - never let the copy's task die: Route falls back to Score
                log.exception("following WatchWeights failed; scoring through Score")
            self._table, self._copy = None, None
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1

    def _heard(self, update: scorer_pb2.WeightsUpdate) -> None:
        if update.heartbeat_seconds > 0:
            self._stale_after = STALE_AFTER_HEARTBEATS * update.heartbeat_seconds
        if update.HasField("weights"):
            copy = CountsCopy(Weights.from_proto(update.weights))
            table = copy.table().prepared()
            if self._table is None or table.version != self._table.version:
                log.info("scoring in-process with weights version %s (%d tags, %d models)",
                         table.version, len(table.rows), len(table.models))
            if self._table is not None:  # the first message of a stream may come long after the last change
                self._observe_lag(update)
            self._copy, self._table, self._sequence = copy, table, update.sequence
        elif update.HasField("delta"):
            delta = update.delta
            if self._copy is None or delta.version != self._copy.version or delta.base_sequence != self._sequence:
                raise OutOfStep(f"a delta on message {delta.base_sequence} of version {delta.version}, the copy "
                                f"holds message {self._sequence}")
            self._copy.apply((c.tag, c.model, [getattr(c, f) for f in COUNT_FIELDS]) for c in delta.counts)
            self._table, self._sequence = self._copy.table().prepared(), update.sequence  # not in a Route
            self._observe_lag(update)
        self._heard_at = time.monotonic()

    @staticmethod
    def _observe_lag(update: scorer_pb2.WeightsUpdate) -> None:
        if update.changes_after_unix_nanos > 0:
            metrics.WEIGHTS_COPY_LAG.observe(max(0.0, (time.time_ns() - update.changes_after_unix_nanos) / 1e9))
