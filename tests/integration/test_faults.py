"""Kill and restart the scorer, Redis and the tagger under a bounded load on loopback:
every Route call gets an answer (degraded ones flagged), routing recovers by itself, and
every Feedback sent is counted exactly once (clients retry with the same feedback_id)."""
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import Process, running_stack, service_env, wait_serving

LOAD_SECONDS_MAX = 40  # the load stops by itself, whatever happens
WORKERS = 4


class Load:
    """Route calls from a few threads until stopped; counts answers, degraded answers and failures."""

    def __init__(self, address: str):
        self.address = address
        self.stop = threading.Event()
        self.ok = self.degraded = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def worker(self, worker_id: int) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            n, started = 0, time.monotonic()
            while not self.stop.is_set() and time.monotonic() - started < LOAD_SECONDS_MAX:
                n += 1
                query = f"Question {worker_id}-{n}: how do I cook {n} grams of rice for {worker_id + 2} people?"
                try:
                    reply = stub.Route(router_pb2.RouteRequest(query=query), timeout=2.0)
                    with self.lock:
                        self.ok += 1
                        self.degraded += reply.degraded
                except grpc.RpcError as err:
                    with self.lock:
                        self.failures.append(f"{err.code().name}: {err.details()}")
                time.sleep(0.005)

    def run(self, pool: ThreadPoolExecutor):
        return [pool.submit(self.worker, i) for i in range(WORKERS)]


FEEDBACK_TAG = "topic:fault-check"
FEEDBACK_MODEL = "gemma-7b-it"


class FeedbackLoad:
    """Sends Feedback outcomes one after another, each retried with its id until it is acknowledged."""

    def __init__(self, address: str):
        self.address = address
        self.stop = threading.Event()
        self.acknowledged = 0
        self.retries = 0
        self.lost: list[str] = []

    def worker(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            n, started = 0, time.monotonic()
            while not self.stop.is_set() and time.monotonic() - started < LOAD_SECONDS_MAX:
                n += 1
                request = scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=[FEEDBACK_TAG]),
                                                     model=FEEDBACK_MODEL, outcome=scorer_pb2.OUTCOME_WIN,
                                                     feedback_id=f"fault-{n}")
                give_up = time.monotonic() + 20
                while True:
                    try:
                        stub.Feedback(request, timeout=1.0)
                        self.acknowledged += 1
                        break
                    except grpc.RpcError as err:
                        if time.monotonic() > give_up:
                            self.lost.append(f"fault-{n}: {err.code().name}")
                            break
                        self.retries += 1
                        time.sleep(0.05)
                time.sleep(0.01)


@pytest.mark.standalone_only(reason="kills and restarts its own redis-server, whose append-only file keeps the data; "
                                    "tests/integration/test_redis_modes.py kills Sentinel's and Cluster's primaries")
def test_route_survives_kills_of_scorer_redis_and_tagger(tmp_path):
    redis_port = free_port()
    redis_server = EmbeddedRedis(port=redis_port, data_dir=str(tmp_path))
    url = redis_server.start()
    try:
        with running_stack(url) as procs, ThreadPoolExecutor(WORKERS) as pool:
            load = Load(procs["router"].address)
            futures = load.run(pool)
            feedback = FeedbackLoad(procs["scorer"].address)
            feedback_thread = threading.Thread(target=feedback.worker)
            feedback_thread.start()
            time.sleep(1.0)

            procs["scorer"].stop(signal.SIGKILL)
            time.sleep(1.0)
            procs["scorer"] = Process("scorer", service_env(url), port=procs["scorer"].port)
            wait_serving(procs["scorer"].address)

            redis_server.stop(signal.SIGKILL)  # weights and counts survive in the append-only file
            time.sleep(1.0)
            redis_server = EmbeddedRedis(port=redis_port, data_dir=str(tmp_path))
            redis_server.start()

            procs["tagger"].stop(signal.SIGKILL)
            time.sleep(1.0)
            procs["tagger"] = Process("tagger", service_env(url), port=procs["tagger"].port)
            wait_serving(procs["tagger"].address)

            recovered_at = time.monotonic()
            time.sleep(2.0)  # routing is healthy again without any restart of the router
            load.stop.set()
            feedback.stop.set()
            for f in futures:
                f.result()
            feedback_thread.join()

            with grpc.insecure_channel(procs["scorer"].address) as channel:
                weights = scorer_pb2_grpc.ScorerServiceStub(channel).GetWeights(
                    scorer_pb2.GetWeightsRequest(tags=[FEEDBACK_TAG]), timeout=5)
            counted = next(c for c in weights.counts if c.tag == FEEDBACK_TAG and c.model == FEEDBACK_MODEL)

            with grpc.insecure_channel(procs["router"].address) as channel:
                reply = router_pb2_grpc.RouterServiceStub(channel).Route(
                    router_pb2.RouteRequest(query="Summarise the plot of Hamlet"), timeout=2)
            assert not reply.degraded, reply.degraded_reason
            assert time.monotonic() - recovered_at < LOAD_SECONDS_MAX
    finally:
        redis_server.stop()
    assert load.failures == []
    assert load.ok > 100
    assert 0 < load.degraded < load.ok
    assert feedback.lost == []
    assert feedback.acknowledged > 50 and feedback.retries > 0  # the kills did interrupt feedback
    assert counted.win == feedback.acknowledged  # each outcome counted exactly once
    assert counted.answers == feedback.acknowledged
