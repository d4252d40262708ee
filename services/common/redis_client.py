"""A redis-py asyncio client for a Redis URL's target (services/common/redis_url.py): one server, a
Sentinel-managed primary, or a Cluster. The scorer's REDIS_URL uses it; any other Redis setting
of the three forms can too.

Reconnection, failover and redirection are redis-py's: the Sentinel client asks the sentinels for
the current primary whenever its connection fails, the Cluster client follows MOVED and ASK and
reloads the slot map, and every command is retried with exponential backoff (capped at 1 s,
RETRIES times) on connection errors and timeouts before the error reaches the scorer.
"""
from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.redis_url import CLUSTER, SENTINEL, RedisTarget

SOCKET_TIMEOUT_S = 2.0
RETRIES = 6  # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1 s of backoff: about a Sentinel failover's election


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES)


def connect(target: RedisTarget):
    """The client (Redis or RedisCluster, decode_responses=True) for `target`; connects lazily."""
    common = dict(decode_responses=True, socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S)
    auth = dict(password=target.password, username=target.username)
    if target.mode == CLUSTER:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.hosts], ssl=target.tls,
                            retry=_retry(), require_full_coverage=True, **auth, **common)
    retry = dict(retry=_retry(), retry_on_error=[RedisConnectionError, RedisTimeoutError])
    if target.mode == SENTINEL:
        sentinel = Sentinel(list(target.hosts), ssl=target.tls,
                            sentinel_kwargs=dict(socket_connect_timeout=SOCKET_TIMEOUT_S,
                                                 socket_timeout=SOCKET_TIMEOUT_S, ssl=target.tls))
        return sentinel.master_for(target.service_name, db=target.db, health_check_interval=10,
                                   **auth, **common, **retry)
    return aioredis.Redis.from_url(target.url, health_check_interval=10, **common, **retry)


def is_cluster(client) -> bool:
    return isinstance(client, RedisCluster)
