"""Sticky sessions: which model answered a conversation last, in Redis, shared by every replica.

One key per session, `tagrouter:session:{<sha256 of the id>}` -> model name, with a TTL renewed at
every turn. The hash tag is the session's own, so on a Redis Cluster sessions spread over every
slot. TAGROUTER_SESSION_REDIS_URL takes REDIS_URL's three forms (one server, Sentinel, Cluster;
services/common/redis_url.py), with redis-py's client for each (services/common/redis_client.py).
Sessions are a preference, not a dependency: when Redis fails or is slow, Route answers as
without a session (counted in `tagrouter_route_sessions_total{result="unavailable"}`).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

from redis.exceptions import RedisError

from services.common import metrics, redis_client, redis_url

log = logging.getLogger(__name__)

KEY_PREFIX = "tagrouter:session:"
TIMEOUT_S = 0.25  # each Redis call; Route does not wait longer than this for a session
RETRIES = 1  # one retry within TIMEOUT_S, e.g. on a connection a failover closed


def session_key(session_id: str) -> str:
    """A bounded key whatever the id holds (the id may carry a user name: it is not stored)."""
    return KEY_PREFIX + "{" + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest() + "}"


class SessionStore:
    """get/remember the model of a session; every failure is logged and counted, never raised."""

    def __init__(self, url: str, ttl_s: int, ca_file=None):
        self.ttl_s = ttl_s
        self.client = redis_client.connect(redis_url.parse(url), ca_file, socket_timeout=TIMEOUT_S, retries=RETRIES)

    async def kept_model(self, session_id: str) -> str | None:
        """The model that answered the session last, or None (new, expired, or Redis unavailable)."""
        try:
            return await asyncio.wait_for(self.client.get(session_key(session_id)), TIMEOUT_S)
        except (TimeoutError, RedisError, OSError) as err:
            _unavailable("read", err)
            return None

    async def remember(self, session_id: str, model: str) -> None:
        try:
            await asyncio.wait_for(self.client.set(session_key(session_id), model, ex=self.ttl_s), TIMEOUT_S)
        except (TimeoutError, RedisError, OSError) as err:
            _unavailable("write", err)

    async def close(self) -> None:
        await self.client.aclose()


def _unavailable(what: str, err: Exception) -> None:
    metrics.ROUTE_SESSIONS.labels("unavailable").inc()
    log.warning("session %s failed (%s): routing without the session", what, type(err).__name__)
