"""Durable Feedback: a write is acknowledged only once a replica holds it (Redis WAIT, bounded).

WAIT counts the replicas that acknowledged the writes of the connection it runs on, so the
script and its WAIT go down one connection, as one pipeline (in a Cluster, to the node that owns
the weights' slot). Replicas wanted = min(TAGROUTER_REDIS_WAIT_REPLICAS, replicas connected to
the primary), so one server without replicas never waits. When the bound passes with fewer
confirmations, the outcome is counted on the primary but a failover could still lose it: the
call fails with UNAVAILABLE, `tagrouter_feedback_unreplicated_total` counts it, and a client
that resends with the same feedback_id is answered "already counted" (after another WAIT) or,
if the failover lost it, counted on the new primary: exactly once either way.
"""
from __future__ import annotations

import logging
import time

from redis.exceptions import NoScriptError

from services.common.errors import Unavailable
from services.common.metrics import FEEDBACK_UNREPLICATED
from services.common.redis_client import is_cluster

log = logging.getLogger(__name__)

REPLICAS_REFRESH_S = 5.0  # how long the count of connected replicas is trusted


class Replication:
    def __init__(self, client, wanted: int, timeout_ms: int = 500):
        self.client = client
        self.wanted = wanted
        self.timeout_ms = timeout_ms
        self._replicas = 0
        self._checked_at = float("-inf")
        self._shas: dict[str, str] = {}
        self._warned_at = float("-inf")

    async def _target(self, key: str) -> int:
        if self.wanted <= 0:
            return 0
        if time.monotonic() - self._checked_at > REPLICAS_REFRESH_S:
            kw = {"target_nodes": self.client.get_node_from_key(key)} if is_cluster(self.client) else {}
            info = await self.client.info("replication", **kw)
            self._replicas = int(info.get("connected_slaves", 0))
            self._checked_at = time.monotonic()
        return min(self.wanted, self._replicas)

    async def run_durably(self, script: str, keys: list[str], args: list):
        """The script's reply, once `wanted` replicas (at most those connected) hold its writes."""
        target = await self._target(keys[0])
        for attempt in (0, 1):  # once more after NOSCRIPT (a promoted replica has an empty script cache)
            sha = self._shas.get(script) or await self._load(script)
            pipe = self.client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)  # cluster pipelines block .evalsha()
            if target > 0:
                kw = {"target_nodes": self.client.get_node_from_key(keys[0])} if is_cluster(self.client) else {}
                pipe.execute_command("WAIT", target, self.timeout_ms, **kw)
            try:
                replies = await pipe.execute()
                break
            except NoScriptError:
                self._shas.pop(script, None)
                if attempt:
                    raise
            except Exception as err:  # noqa: BLE001 - a pipeline wraps NOSCRIPT in a ResponseError's text
                if "NOSCRIPT" not in str(err) or attempt:
                    raise
                self._shas.pop(script, None)
        if target > 0 and int(replies[1]) < target:
            self._checked_at = float("-inf")  # the replicas may be gone: count them again next time
            FEEDBACK_UNREPLICATED.inc()
            if time.monotonic() - self._warned_at > 10:
                self._warned_at = time.monotonic()
                log.warning("Feedback reached %d of %d replicas within %d ms: answered UNAVAILABLE",
                            int(replies[1]), target, self.timeout_ms)
            raise Unavailable(f"the outcome was counted on the Redis primary, but {int(replies[1])} of {target} "
                              f"replicas confirmed it within {self.timeout_ms} ms; resend it with the same "
                              "feedback_id (it is then counted once)")
        return replies[0]

    async def _load(self, script: str) -> str:
        self._shas[script] = sha = await self.client.script_load(script)
        return sha
