"""Issue 13, findings 1, 2, 4 and 12 against a real scorer process and a real Redis.

1: numbers entering state are bounded, a Feedback is all or nothing, corrupt stored counts
   cannot poison Score, GetWeights or the watchers; 2: thousands of WatchWeights streams
   cancelled at once, repeatedly, leave the broadcast working and shutdown prompt; 4: the
   vocabulary's growth through Feedback is capped (per call, in total, in bytes) and so are the
   names of one GetWeights; 12: a LoadWeights whose caller gave up is never activated.
"""
from __future__ import annotations

import asyncio
import math
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import DEFAULT_WEIGHTS_FILE
from services.scorer.keys import KEY_PATTERN, PREFIX, SEQ_KEY, feedback_key
from services.scorer.store import ACTIVE_KEY, meta_key, tag_key, tags_key
from tagrouter.core import limits
from tagrouter.core.weights import MAX_NAME_LENGTH, Weights
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tests.conftest import Process, service_env, wait_serving

TAG = "task:code-generation"
MODEL = "gemma-7b-it"
MANY = "5000"


@pytest.fixture(scope="module")
def scorer_proc(redis_url):
    env = service_env(redis_url, TAGROUTER_MAX_STREAMS=MANY, TAGROUTER_MAX_STREAMS_PER_PEER=MANY,
                      TAGROUTER_MAX_CONCURRENT_RPCS=MANY, TAGROUTER_GRACE_SECONDS="20")
    proc = Process("scorer", env)
    try:
        wait_serving(proc.address)
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def stub(scorer_proc, clean_redis):
    """The scorer with the starter weights freshly loaded (a clean state for each test)."""
    with grpc.insecure_channel(scorer_proc.address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()),
                         timeout=30)
        yield stub


def feedback(stub, tags, **kw):
    kw.setdefault("model", MODEL)
    kw.setdefault("outcome", scorer_pb2.OUTCOME_WIN)
    return stub.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=tags), **kw), timeout=10)


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def stored_numbers(client) -> list[float]:
    """Every count of the active version, as Python reads it back."""
    version = client.get(ACTIVE_KEY).decode()
    values = []
    for tag in client.smembers(tags_key(version)):
        values += [float(v) for v in client.hvals(tag_key(version, tag.decode()))]
    return values


def snapshot(client) -> dict:
    """Every tagrouter key and its value (the load sequence aside)."""
    read = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers}
    return {k: read[client.type(k)](k) for k in client.scan_iter(KEY_PATTERN) if k.decode() != SEQ_KEY}


# --- finding 1 -----------------------------------------------------------------------------
def test_huge_output_tokens_are_refused_and_count_nothing(stub, clean_redis):
    before = snapshot(clean_redis)
    for value in (1e308, 1e308, math.inf, limits.MAX_OUTPUT_TOKENS + 1):
        err = refused(lambda v=value: feedback(stub, [TAG], output_tokens=v))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "output_tokens" in err.details()
    assert snapshot(clean_redis) == before
    feedback(stub, [TAG], output_tokens=limits.MAX_OUTPUT_TOKENS)  # the bound itself is fine
    assert all(math.isfinite(v) for v in stored_numbers(clean_redis))


def test_corrupt_stored_counts_poison_nothing_and_feedback_on_them_writes_nothing(stub, clean_redis):
    """The state the old code reached (2e308 stored, read back as inf), written by hand."""
    version = clean_redis.get(ACTIVE_KEY).decode()
    for tag in (TAG, "*"):
        clean_redis.hset(tag_key(version, tag), f"{MODEL}|output_tokens", "2e+308")
    clean_redis.hset(tag_key(version, TAG), "claude-2|win", "nan")
    before = snapshot(clean_redis)
    score = stub.Score(scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name=TAG, weight=1)]), timeout=5)
    assert len(score.scores) == 7
    for s in score.scores:
        assert all(math.isfinite(x) for x in (s.score, s.expected_output_tokens, s.prior_score))
    weights = stub.GetWeights(scorer_pb2.GetWeightsRequest(), timeout=10)
    assert all(math.isfinite(getattr(c, f)) for c in weights.counts
               for f in ("win", "tie", "loss", "answers", "output_tokens"))
    assert not [c for c in weights.counts if c.model in (MODEL, "claude-2") and c.tag == TAG]  # left out
    # a Feedback without output_tokens needs the cell's mean length: refused whole, id not burned
    err = refused(lambda: feedback(stub, [TAG], feedback_id="fb-corrupt"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "load the weights again" in err.details()
    assert snapshot(clean_redis) == before
    assert not clean_redis.exists(feedback_key("fb-corrupt"))
    stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()), timeout=30)
    assert not feedback(stub, [TAG], feedback_id="fb-corrupt").duplicate  # repaired: counted now


@pytest.mark.parametrize("field, value", [("win", 1e300), ("output_tokens", 1e300), ("answers", 2e12)])
def test_load_weights_with_counts_past_their_bounds_is_refused(stub, clean_redis, field, value):
    msg = Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()
    setattr(msg.counts[0], field, value)
    active = clean_redis.get(ACTIVE_KEY)
    err = refused(lambda: stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=msg), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most" in err.details()
    assert clean_redis.get(ACTIVE_KEY) == active


# --- finding 4 -----------------------------------------------------------------------------
def test_new_tags_per_feedback_are_capped(stub, clean_redis):
    before = snapshot(clean_redis)
    new = [f"topic:new-{i}-" + "x" * 180 for i in range(limits.MAX_NEW_TAGS_PER_FEEDBACK + 1)]
    err = refused(lambda: feedback(stub, new + [TAG]))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_NEW_TAGS_PER_FEEDBACK" in err.details()
    assert snapshot(clean_redis) == before
    assert feedback(stub, new[:-1] + [TAG]).tags[-1] == "*"  # at the cap: counted


def test_total_tags_are_capped(stub, clean_redis):
    version = clean_redis.get(ACTIVE_KEY).decode()
    present = clean_redis.scard(tags_key(version)) - 1  # without `*`
    filler = [f"topic:filler-{i}" for i in range(limits.MAX_TAGS_TOTAL - present)]
    clean_redis.sadd(tags_key(version), *filler)  # as if Feedback had grown the vocabulary to the cap
    before = snapshot(clean_redis)
    err = refused(lambda: feedback(stub, ["topic:one-too-many", TAG]))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_TAGS_TOTAL" in err.details()
    assert snapshot(clean_redis) == before
    feedback(stub, [TAG, filler[0]])  # known tags are still counted


def test_weights_bytes_are_capped(stub, clean_redis):
    version = clean_redis.get(ACTIVE_KEY).decode()
    assert 0 < int(clean_redis.hget(meta_key(version), "bytes")) < limits.MAX_WEIGHTS_BYTES
    clean_redis.hset(meta_key(version), "bytes", limits.MAX_WEIGHTS_BYTES - 10)
    err = refused(lambda: feedback(stub, ["topic:a-new-tag"]))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_WEIGHTS_BYTES" in err.details()
    feedback(stub, [TAG])  # a cell that exists adds no bytes


def test_get_weights_names_are_capped(stub):
    names = [f"topic:t{i}" for i in range(limits.MAX_GET_WEIGHTS_TAGS + 1)]
    err = refused(lambda: stub.GetWeights(scorer_pb2.GetWeightsRequest(tags=names), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and str(limits.MAX_GET_WEIGHTS_TAGS) in err.details()
    start = time.monotonic()
    reply = stub.GetWeights(scorer_pb2.GetWeightsRequest(tags=[TAG] * 100_000), timeout=10)
    assert time.monotonic() - start < 1 and {c.tag for c in reply.counts} == {TAG, "*"}


# --- finding 12 ----------------------------------------------------------------------------
def slow_weights() -> scorer_pb2.Weights:
    """The starter weights plus 10,000 tags x every model (about 70k cells, 4.6 MiB: within
    MAX_TAGS_TOTAL and MAX_WEIGHTS_BYTES): a load whose parsing and checking alone (Weights.from_proto,
    CPU-bound, no await) take far longer than a caller with a 0.3 s deadline waits."""
    base = Weights.load(DEFAULT_WEIGHTS_FILE)
    msg = base.to_proto()
    for i in range(10_000):
        for m in base.models:
            msg.counts.add(tag=f"topic:slow-{i:05d}", model=m.name, win=1, answers=1, output_tokens=10)
    return msg


def test_a_load_whose_caller_gave_up_is_never_activated(stub, clean_redis):
    """The probe's finding: the caller got DEADLINE_EXCEEDED, the load became active later. The
    deadline passes while the handler parses the weights without awaiting, and gRPC's cancellation
    did not stop it: before the fix it went on to write and switch about a second after the caller
    gave up (the old test here stopped watching at the first poll, before that switch, and passed)."""
    msg = slow_weights()
    start = time.monotonic()
    reply = stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=msg), timeout=60)  # with time: loaded
    took = time.monotonic() - start
    active = clean_redis.get(ACTIVE_KEY)
    assert active.decode() == reply.version
    deadline = min(0.3, took / 5)  # well inside the parsing, whatever the machine's speed
    err = refused(lambda: stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=msg), timeout=deadline))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    watch_until = time.monotonic() + min(20.0, max(5.0, 4 * took))  # past the time the whole load takes
    while time.monotonic() < watch_until:
        assert clean_redis.get(ACTIVE_KEY) == active, "a load whose caller got DEADLINE_EXCEEDED became active"
        time.sleep(0.05)
    versions = {k.decode().split(":")[2] for k in clean_redis.scan_iter(f"{PREFIX}:w:*:meta")}
    assert versions == {active.decode()}  # nothing of the abandoned version is left behind
    assert stub.ListModels(scorer_pb2.ListModelsRequest(), timeout=10).weights_version == active.decode()


# --- finding 2 -----------------------------------------------------------------------------
def test_thousands_of_cancelled_watchers_leave_the_broadcast_working_and_shutdown_prompt(redis_url, clean_redis):
    env = service_env(redis_url, TAGROUTER_MAX_STREAMS=MANY, TAGROUTER_MAX_STREAMS_PER_PEER=MANY,
                      TAGROUTER_MAX_CONCURRENT_RPCS=MANY, TAGROUTER_GRACE_SECONDS="30")
    proc = Process("scorer", env)
    try:
        wait_serving(proc.address)

        async def scenario():
            async with grpc.aio.insecure_channel(proc.address) as channel:
                stub = scorer_pb2_grpc.ScorerServiceStub(channel)
                for round_ in range(5):
                    calls = [stub.WatchWeights(scorer_pb2.WatchWeightsRequest()) for _ in range(2000)]
                    # let most streams start and receive, then cancel all at once, at a varied moment
                    first_reads = await asyncio.gather(*(c.read() for c in calls[::50]), return_exceptions=True)
                    # (a few of 2,000 streams opened at once on one connection can end CANCELLED at once)
                    assert sum(isinstance(r, Exception) for r in first_reads) <= 8, first_reads
                    await asyncio.sleep(0.1 + 0.23 * round_)
                    for c in calls:
                        c.cancel()
                    await asyncio.sleep(0.2)
                health = health_pb2_grpc.HealthStub(channel)
                assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == \
                    health_pb2.HealthCheckResponse.SERVING
                watcher = stub.WatchWeights(scorer_pb2.WatchWeightsRequest())
                first = await asyncio.wait_for(watcher.read(), 10)
                assert first.HasField("weights")
                await stub.Feedback(scorer_pb2.FeedbackRequest(tags=scorer_pb2.TagList(names=[TAG]), model=MODEL,
                                                               outcome=scorer_pb2.OUTCOME_WIN), timeout=10)
                while True:  # heartbeats until the change arrives (as a delta: TAGROUTER_WATCH_DELTAS)
                    update = await asyncio.wait_for(watcher.read(), 10)
                    if update.HasField("delta") and any(c.tag == TAG for c in update.delta.counts):
                        break
                assert update.delta.version == first.weights.version
                changed = {(c.tag, c.model): c.win for c in update.delta.counts}
                before = {(c.tag, c.model): c.win for c in first.weights.counts}
                assert changed[(TAG, MODEL)] == before[(TAG, MODEL)] + 1
                return watcher

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(scenario(), 120))
            start = time.monotonic()
            assert proc.stop() == 0
            assert time.monotonic() - start < 10, "SIGTERM waited on the watch streams"
        finally:
            loop.close()
        output = proc.output() or ""
        assert "Lock is not acquired" not in output and "Traceback" not in output, output[-3000:]
    finally:
        proc.stop()


def test_weights_copied_out_and_loaded_back_again_and_again_stay_loadable(stub, clean_redis):
    """Each LoadWeights adds `.<seq>` to the version it was given: a copy of a copy grew without end and
    then, past the name limit, could not be loaded back."""
    weights = Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()
    weights.version = "v" * (MAX_NAME_LENGTH - 2)
    for _ in range(3):
        version = stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=weights), timeout=60).version
        assert 0 < len(version) <= MAX_NAME_LENGTH
        weights = stub.GetWeights(scorer_pb2.GetWeightsRequest(), timeout=60)
        assert weights.version == version
