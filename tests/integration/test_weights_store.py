"""Weights in a real Redis: loads switch atomically, bad weights load nothing."""
import asyncio
import json
import re

import grpc
import pytest

from services.common.settings import DEFAULT_WEIGHTS_FILE
from services.scorer.keys import PREFIX, version_prefix
from services.scorer.store import ACTIVE_KEY, WeightStore
from tagrouter.core.weights import Weights, WeightsError
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tests.conftest import Process, service_env, wait_serving


def run(coro):
    return asyncio.run(coro)


def starter() -> Weights:
    return Weights.load(DEFAULT_WEIGHTS_FILE)


def test_committed_starter_weights_are_valid_counts_only():
    doc = json.loads(DEFAULT_WEIGHTS_FILE.read_text())
    assert set(doc) >= {"format", "version", "provenance", "models", "counts"}
    # counts per tag name only: no prompt text (tag names have no spaces; "query" may be part of a topic's name)
    assert all(re.fullmatch(r"\*|(task|domain|topic|attr):\S{1,100}", tag) for tag in doc["counts"])
    assert '"query"' not in DEFAULT_WEIGHTS_FILE.read_text()
    weights = starter()
    assert weights.version == weights.content_hash()  # the file's version is its content's hash
    assert len(weights.models) >= 2 and "*" in weights.counts


def test_load_switches_versions_and_drops_the_old_one(clean_redis, redis_url):
    async def scenario():
        store = WeightStore.from_url(redis_url)
        try:
            first = await store.load(starter())
            second = await store.load(starter())
            version, (counts,) = await store.read_tags(["*"])
            back = await store.read_weights()
            return first, second, version, counts, back
        finally:
            await store.close()

    first, second, version, counts, back = run(scenario())
    assert first != second and version == second
    assert not list(clean_redis.scan_iter(f"{version_prefix(first)}:*"))
    assert counts["gpt4_1106_preview"] == starter().counts["*"]["gpt4_1106_preview"]
    assert back.counts == starter().counts


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["models"].append(dict(d["models"][0])), "duplicate model names"),
    (lambda d: d["counts"]["*"].update({"ghost": [1, 0, 0, 1, 5]}), "outside the pool"),
    (lambda d: d["counts"]["*"]["gemma-7b-it"].__setitem__(0, -1), "finite counts >= 0"),
    (lambda d: d["models"][0].__setitem__("input_usd_per_mtok", -3), "input_usd_per_mtok"),
    (lambda d: d["counts"].pop("*"), "all-queries tag"),
])
def test_invalid_weights_are_refused_and_leave_the_active_version(clean_redis, redis_url, tmp_path, mutate, message):
    doc = json.loads(DEFAULT_WEIGHTS_FILE.read_text())
    mutate(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=message):
        Weights.load(bad)


def test_scorer_rpc_refuses_bad_weights_and_keeps_serving_the_old(clean_redis, redis_url):
    env = service_env(redis_url)
    scorer = Process("scorer", env)
    try:
        wait_serving(scorer.address)
        active = clean_redis.get(ACTIVE_KEY)
        msg = starter().to_proto()
        msg.counts.add(tag="task:x", model="ghost", win=1)
        with grpc.insecure_channel(scorer.address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=msg), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "ghost" in err.value.details()
            assert clean_redis.get(ACTIVE_KEY) == active
            keys = {k.decode() for k in clean_redis.scan_iter(f"{PREFIX}:w:*")}
            assert all(active.decode() in k for k in keys)  # nothing half-loaded beside it
            models = stub.ListModels(scorer_pb2.ListModelsRequest(), timeout=5)
            assert len(models.models) == 7
            reply = stub.Score(scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name="task:code-generation",
                                                                                    weight=0.7),
                                                             scorer_pb2.WeightedTag(name="tag:never-seen", weight=1)]),
                               timeout=5)
            assert list(reply.unknown_tags) == ["tag:never-seen"]
            assert len(reply.scores) == 7
            assert all(c.tag == "task:code-generation" for s in reply.scores for c in s.contributions)
            with pytest.raises(grpc.RpcError) as err:
                stub.Score(scorer_pb2.ScoreRequest(tags=[scorer_pb2.WeightedTag(name="a", weight=float("nan"))]),
                           timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        assert scorer.stop() == 0


def test_a_load_that_fails_half_way_leaves_the_previous_weights_serving(clean_redis, redis_url):
    """Make the new version's 600th tag key a string, so HSET fails after the first chunks are written."""
    from services.scorer.store import SEQ_KEY, tag_key

    base = starter()
    counts = dict(base.counts)
    for i in range(1000):
        counts[f"topic:filler-{i:04d}"] = base.counts["*"]
    big = Weights(models=base.models, params=base.params, counts=counts, provenance="test")

    async def scenario():
        store = WeightStore.from_url(redis_url)
        try:
            active = await store.load(base)
            doomed = f"{big.version}.{int(clean_redis.get(SEQ_KEY)) + 1}"
            clean_redis.set(tag_key(doomed, "topic:filler-0600"), "not a hash")
            with pytest.raises(Exception, match="WRONGTYPE"):
                await store.load(big)
            version, (prior,) = await store.read_tags(["*"])
            return active, doomed, version, prior
        finally:
            await store.close()

    active, doomed, version, prior = run(scenario())
    assert version == active
    assert prior["gemma-7b-it"] == base.counts["*"]["gemma-7b-it"]
    assert not [k for k in clean_redis.scan_iter(f"{version_prefix(doomed)}:*")]  # the half-load was removed
