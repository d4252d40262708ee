"""The integration suite's Redis matrix: every test that uses the `redis_url` fixture runs against one
Redis server, a Sentinel-managed primary with two replicas and three sentinels, and a six-node Redis
Cluster (tagrouter/stack/redis_topologies.py), each started once per session on loopback.

- The sentinel and cluster cases are marked `redis_sentinel` and `redis_cluster` (`-m "not redis_cluster"`
  leaves one out) and skip, saying why, when redis-server or redis-cli is missing.
- TAGROUTER_TEST_REDIS_MODES=standalone (a comma list of the three) runs only those modes.
- REDIS_URL, when set, is the one Redis the suite uses: the cases of its mode run against it, the others
  skip, saying so.
- A test (or module) marked `standalone_only` runs only against one server: the mark says why.
"""
from __future__ import annotations

import contextlib
import os

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from services.common.redis_url import CLUSTER, SENTINEL, STANDALONE, parse
from services.scorer.keys import KEY_PATTERN

MODES = (STANDALONE, SENTINEL, CLUSTER)
MODES_ENV = "TAGROUTER_TEST_REDIS_MODES"


def selected_modes() -> tuple[str, ...]:
    raw = os.environ.get(MODES_ENV, "").strip()
    if not raw:
        return MODES
    modes = tuple(m.strip() for m in raw.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise pytest.UsageError(f"{MODES_ENV} must list some of {', '.join(MODES)}, not {raw!r}")
    return modes


def params(standalone_only: bool = False) -> list:
    """The pytest params of `redis_mode` for one test."""
    modes = [m for m in selected_modes() if m == STANDALONE or not standalone_only]
    return [pytest.param(m, id=m, marks=[] if m == STANDALONE else [getattr(pytest.mark, f"redis_{m}")])
            for m in modes]


def header() -> str:
    from tagrouter.stack.redis_topologies import binaries_missing

    missing, modes = binaries_missing(), selected_modes()
    shared = os.environ.get("REDIS_URL", "").strip()
    if shared:
        return f"redis modes: only {parse(shared).mode}, the REDIS_URL given (the other modes skip)"
    skipped = f" (sentinel and cluster SKIPPED: {missing})" if missing and modes != (STANDALONE,) else ""
    return f"redis modes: {', '.join(modes)}{skipped}"


@contextlib.contextmanager
def server(mode: str):
    """The URL of a Redis of `mode` for the session (skips, saying why, when it cannot be had)."""
    from tagrouter.stack.embedded_redis import EmbeddedRedis
    from tagrouter.stack.redis_topologies import ClusterGroup, SentinelGroup, binaries_missing

    shared = os.environ.get("REDIS_URL", "").strip()
    if shared:
        if parse(shared).mode != mode:
            pytest.skip(f"{mode} Redis not started: REDIS_URL is set (a {parse(shared).mode} Redis), the suite uses it only")
        yield shared
    elif mode == STANDALONE:
        with EmbeddedRedis() as url:
            yield url
    else:
        missing = binaries_missing()
        if missing:
            pytest.skip(f"{mode} Redis not started: {missing}")
        with (SentinelGroup() if mode == SENTINEL else ClusterGroup()) as group:
            yield group.url


def sync_client(url: str, decode_responses: bool = False):
    """A plain redis-py client on the target of any of REDIS_URL's forms (a Cluster's scan_iter covers every
    primary and its delete splits keys by slot, so the tests read and wipe the same way in every mode)."""
    target = parse(url)
    auth = dict(password=target.password, username=target.username)
    common = dict(decode_responses=decode_responses, socket_timeout=5, socket_connect_timeout=2)
    if target.mode == CLUSTER:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.hosts], ssl=target.tls,
                            **auth, **common)
    if target.mode == SENTINEL:
        sentinel = redis.Sentinel(list(target.hosts), sentinel_kwargs=dict(socket_timeout=5, ssl=target.tls))
        return sentinel.master_for(target.service_name, db=target.db, ssl=target.tls, **auth, **common)
    return redis.Redis.from_url(url, **common)


def wipe(client) -> None:
    """Delete every key of the scorer (`{tagrouter}:*`, one slot on a Cluster) wherever it is."""
    keys = list(client.scan_iter(KEY_PATTERN, count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
