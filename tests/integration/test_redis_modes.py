"""The scorer on one Redis server, a Sentinel-managed primary with two replicas and three sentinels,
and a six-node Redis Cluster, all real and on loopback (tagrouter/stack/redis_topologies.py).

The whole integration suite runs against each mode (tests/redis_matrix.py); these tests check what is
particular to each (where the keys land, sticky sessions, deltas), and under a bounded
Route and Feedback load the primary that holds the weights is killed with SIGKILL: no Route call
fails, routing is healthy again without restarting anything, and every Feedback acknowledged is
counted exactly once (the clients resend with the same feedback_id until acknowledged).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import redis

from services.router.sessions import session_key
from services.scorer.keys import ACTIVE_KEY, PREFIX, meta_key
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack.embedded_redis import EmbeddedRedis
from tagrouter.stack.redis_topologies import ClusterGroup, SentinelGroup, binaries_missing
from tests import conftest
from tests.conftest import running_stack, wipe_tagrouter_keys
from tests.integration.test_faults import FEEDBACK_MODEL, FEEDBACK_TAG, WORKERS, FeedbackLoad, Load

MISSING = binaries_missing()
pytestmark = pytest.mark.redis_modes


@contextlib.contextmanager
def redis_of(mode: str):
    """(url, group) of a fresh Redis of that mode; the group is None for one server."""
    if mode == "standalone":
        with EmbeddedRedis() as url:
            yield url, None
    else:
        with (SentinelGroup() if mode == "sentinel" else ClusterGroup()) as group:
            yield group.url, group


@contextlib.contextmanager
def stack_on(url: str, **extra: str):
    """The three services with the scorer on `url`, and the router's sticky sessions there too (LocalStack
    gives TAGROUTER_SESSION_REDIS_URL the stack's REDIS_URL; it takes the same three forms)."""
    with running_stack(url, **extra) as procs:
        yield procs


def sync_client(url: str):
    """A plain redis-py client (str answers) on the same target, to look at what the scorer wrote."""
    return conftest.sync_client(url, decode_responses=True)


@pytest.fixture(scope="module")
def mode_stack(redis_mode, redis_url):
    """The stack on the session's Redis of each mode (tests/redis_matrix.py: the sentinel and cluster cases
    skip, saying why, without the binaries)."""
    wipe_tagrouter_keys(redis_url)
    with stack_on(redis_url) as procs:
        yield redis_mode, redis_url, procs


def test_route_score_and_feedback_in_every_mode(mode_stack):
    mode, url, procs = mode_stack
    with grpc.insecure_channel(procs["router"].address) as channel:
        reply = router_pb2_grpc.RouterServiceStub(channel).Route(
            router_pb2.RouteRequest(query="Write a haiku about the sea"), timeout=10)
    assert not reply.degraded, reply.degraded_reason
    with grpc.insecure_channel(procs["scorer"].address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        request = scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=["topic:modes"]), model=FEEDBACK_MODEL,
                                             outcome=scorer_pb2.OUTCOME_WIN, feedback_id=f"modes-{mode}")
        first, second = stub.Feedback(request, timeout=10), stub.Feedback(request, timeout=10)
        assert not first.duplicate and second.duplicate
        weights = stub.GetWeights(scorer_pb2.GetWeightsRequest(tags=["topic:modes"]), timeout=10)
    assert [(c.model, c.win) for c in weights.counts if c.tag == "topic:modes"] == [(FEEDBACK_MODEL, 1.0)]
    client = sync_client(url)
    try:
        keys = list(client.scan_iter(f"{PREFIX}:*")) if mode != "cluster" else \
            list(client.scan_iter(f"{PREFIX}:*", target_nodes=redis.RedisCluster.PRIMARIES))
        assert keys and all(k.startswith(PREFIX) for k in keys)
        if mode == "cluster":  # every key of ours in one slot: no script can meet CROSSSLOT
            assert len({client.keyslot(k) for k in keys}) == 1
    finally:
        client.close()


def test_sticky_sessions_in_every_mode(mode_stack):
    """The router keeps a session's model in the same Redis (one server, Sentinel or Cluster); the key is
    hash-tagged by the session, so sessions spread over a Cluster's slots."""
    mode, url, procs = mode_stack
    ids = [f"modes-session-{mode}-{i}" for i in range(8)]
    with grpc.insecure_channel(procs["router"].address) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        first = [stub.Route(router_pb2.RouteRequest(query="Write a haiku about the sea", session_id=i), timeout=10)
                 for i in ids]
        again = stub.Route(router_pb2.RouteRequest(query="Write a haiku about the sea", session_id=ids[0]), timeout=10)
    assert not any(r.degraded for r in first) and again.model == first[0].model
    client = sync_client(url)
    try:
        assert [client.get(session_key(i)) for i in ids] == [r.model for r in first]
        assert 0 < client.ttl(session_key(ids[0])) <= 3600
        if mode == "cluster":
            assert len({client.keyslot(session_key(i)) for i in ids}) > 1
    finally:
        client.close()


def test_watchers_get_the_whole_weights_then_deltas_in_every_mode(mode_stack):
    mode, _, procs = mode_stack
    with grpc.insecure_channel(procs["scorer"].address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        stream = stub.WatchWeights(scorer_pb2.WatchWeightsRequest(), timeout=20)
        first = next(stream)
        assert first.HasField("weights") and first.sequence > 0
        stub.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=["topic:delta"]), model=FEEDBACK_MODEL,
                                                 outcome=scorer_pb2.OUTCOME_LOSS, feedback_id=f"delta-{mode}"),
                      timeout=10)
        updates, cells = [], {}
        for _, update in zip(range(20), stream):  # bounded: heartbeats come every second
            if update.HasField("delta") or update.HasField("weights"):
                updates.append(update)
                cells.update({(c.tag, c.model): c for c in update.delta.counts})
                if ("topic:delta", FEEDBACK_MODEL) in cells:
                    break
        stream.cancel()
    assert updates and all(u.HasField("delta") for u in updates), "after the whole weights, changes come as deltas"
    assert [u.delta.base_sequence for u in updates] == [first.sequence + i for i in range(len(updates))]
    assert [u.sequence for u in updates] == [first.sequence + 1 + i for i in range(len(updates))]
    assert cells[("topic:delta", FEEDBACK_MODEL)].loss == 1 and ("*", FEEDBACK_MODEL) in cells


def _feedback_count(url: str) -> float:
    client = sync_client(url)
    try:
        return float(client.hget(meta_key(client.get(ACTIVE_KEY)), "feedback") or 0)
    finally:
        client.close()


def _kill_the_primary_under_load(mode: str):
    # Production's downstream deadlines (the suite's default is a generous 5 s): while Redis fails over,
    # a Route that waits on Score answers degraded in time instead of meeting the caller's 2 s deadline
    # on a busy machine.
    with redis_of(mode) as (url, group), \
            stack_on(url, TAGROUTER_REDIS_WAIT_TIMEOUT_MS="1000", TAGROUTER_SCORER_TIMEOUT_MS="150",
                     TAGROUTER_TAGGER_TIMEOUT_MS="250") as procs, ThreadPoolExecutor(WORKERS) as pool:
        before = _feedback_count(url)
        load = Load(procs["router"].address)
        futures = load.run(pool)
        feedback = FeedbackLoad(procs["scorer"].address)
        feedback_thread = threading.Thread(target=feedback.worker)
        feedback_thread.start()
        time.sleep(2.0)
        acknowledged_before_kill = feedback.acknowledged
        old = group.primary() if mode == "sentinel" else group.owner_of(ACTIVE_KEY)
        old.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        new = group.wait_failover(old) if mode == "sentinel" else group.wait_failover(old, ACTIVE_KEY)
        failover_s = time.monotonic() - killed_at
        time.sleep(3.0)  # the load goes on against the new primary
        load.stop.set()
        feedback.stop.set()
        for f in futures:
            f.result()
        feedback_thread.join()
        with grpc.insecure_channel(procs["router"].address) as channel:
            reply = router_pb2_grpc.RouterServiceStub(channel).Route(
                router_pb2.RouteRequest(query="Summarise the plot of Hamlet"), timeout=5)
        with grpc.insecure_channel(procs["scorer"].address) as channel:
            weights = scorer_pb2_grpc.ScorerServiceStub(channel).GetWeights(
                scorer_pb2.GetWeightsRequest(tags=[FEEDBACK_TAG]), timeout=5)
        counted = next(c for c in weights.counts if c.tag == FEEDBACK_TAG and c.model == FEEDBACK_MODEL)
        total = _feedback_count(url) - before
    print(f"{mode}: failover {failover_s:.1f} s to port {new.port}; {load.ok} Routes ({load.degraded} degraded), "
          f"{feedback.acknowledged} Feedback acknowledged ({acknowledged_before_kill} before the kill, "
          f"{feedback.retries} resends)")
    assert load.failures == [], load.failures[:5]
    assert not reply.degraded, reply.degraded_reason  # healthy again, nothing restarted
    assert feedback.lost == []
    assert acknowledged_before_kill > 10 and feedback.acknowledged > acknowledged_before_kill
    assert counted.win == feedback.acknowledged == total  # each acknowledged outcome counted exactly once


@pytest.mark.skipif(MISSING is not None, reason=f"Sentinel not started: {MISSING}")
def test_sentinel_failover_under_load_loses_no_acknowledged_feedback():
    _kill_the_primary_under_load("sentinel")


@pytest.mark.skipif(MISSING is not None, reason=f"Cluster not started: {MISSING}")
def test_cluster_failover_under_load_loses_no_acknowledged_feedback():
    _kill_the_primary_under_load("cluster")  # Load records every error, CROSSSLOT and MOVED included


@pytest.mark.skipif(MISSING is not None, reason=f"Sentinel not started: {MISSING}")
def test_feedback_no_replica_confirms_in_time_is_refused_and_counted_once_when_resent():
    with SentinelGroup() as group, stack_on(group.url, TAGROUTER_REDIS_WAIT_TIMEOUT_MS="200") as procs, \
            grpc.insecure_channel(procs["scorer"].address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        request = scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=["topic:wait"]), model=FEEDBACK_MODEL,
                                             outcome=scorer_pb2.OUTCOME_WIN, feedback_id="wait-1")
        replicas = [n for n in group.data if n is not group.primary()]
        for node in replicas:
            node.process.send_signal(signal.SIGSTOP)  # connected, but confirming nothing
        try:
            with pytest.raises(grpc.RpcError) as refused:
                stub.Feedback(request, timeout=10)
        finally:
            for node in replicas:
                node.process.send_signal(signal.SIGCONT)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "replicas confirmed it within 200 ms" in refused.value.details()
        assert stub.Feedback(request, timeout=10).duplicate  # the resend adds nothing, and is now replicated
        weights = stub.GetWeights(scorer_pb2.GetWeightsRequest(tags=["topic:wait"]), timeout=10)
    assert [c.win for c in weights.counts if c.tag == "topic:wait"] == [1.0]
