"""A redis-py asyncio client for a Redis URL's target (services/common/redis_url.py): one server, a
Sentinel-managed primary, or a Cluster. The scorer's REDIS_URL uses it; any other Redis setting
of the three forms can too.

Reconnection, failover and redirection are redis-py's: the Sentinel client asks the sentinels for
the current primary whenever its connection fails, the Cluster client follows MOVED and ASK and
reloads the slot map, and every command is retried with exponential backoff (capped at 1 s,
RETRIES times) on connection errors and timeouts before the error reaches the scorer.

TLS (rediss://, rediss+sentinel://, rediss+cluster://) verifies the servers' certificates and host
names against the system's CAs, or against `ca_file` (TAGROUTER_REDIS_CA_FILE) when given.
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


def _retry(retries: int = RETRIES) -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries)


# Connections per client (per node on a Cluster), opened only when needed. Above what admission lets
# run at once (512 unary + 64 admin calls, docs/OPERATIONS.md), so an admitted call never meets
# redis-py's MaxConnectionsError (its default, 100, failed 200 concurrent tenant Routes).
MAX_CONNECTIONS = 1024


def connect(target: RedisTarget, ca_file=None, socket_timeout: float = SOCKET_TIMEOUT_S, retries: int = RETRIES):
    """The client (Redis or RedisCluster, decode_responses=True) for `target`; connects lazily.

    `ca_file`: a PEM CA bundle verifying the servers when `target.tls` (ignored otherwise).
    `socket_timeout` and `retries` bound one command (the sticky sessions keep both small)."""
    common = dict(decode_responses=True, socket_connect_timeout=socket_timeout, socket_timeout=socket_timeout,
                  max_connections=MAX_CONNECTIONS)
    tls = dict(ssl_ca_certs=str(ca_file)) if target.tls and ca_file else {}
    auth = dict(password=target.password, username=target.username)
    if target.mode == CLUSTER:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.hosts], ssl=target.tls,
                            retry=_retry(retries), require_full_coverage=True, **auth, **common, **tls)
    retry = dict(retry=_retry(retries), retry_on_error=[RedisConnectionError, RedisTimeoutError])
    if target.mode == SENTINEL:
        sentinel = Sentinel(list(target.hosts), ssl=target.tls,
                            sentinel_kwargs=dict(socket_connect_timeout=socket_timeout,
                                                 socket_timeout=socket_timeout, ssl=target.tls, **tls))
        return sentinel.master_for(target.service_name, db=target.db, health_check_interval=10,
                                   **auth, **common, **retry, **tls)
    return aioredis.Redis.from_url(target.url, health_check_interval=10, **common, **retry, **tls)


def is_cluster(client) -> bool:
    return isinstance(client, RedisCluster)
