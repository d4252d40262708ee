"""Issue 13, findings 1, 2 and 4 at the level of the pure core and the broadcast: numbers that
cannot enter state, maths that cannot overflow, limits that are checked, a broadcast that
cannot wedge however its watchers are cancelled."""
from __future__ import annotations

import asyncio
import math
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from services.common.settings import DEFAULT_WEIGHTS_FILE
from services.scorer import watch
from services.scorer.store import parse_tag_hash
from tagrouter.core import limits, scoring
from tagrouter.core.limits import InvalidRequest
from tagrouter.core.pool import ScoringTable
from tagrouter.core.scoring import ScoringParams
from tagrouter.core.weights import Weights, WeightsError
from tagrouter.scorer.v1 import scorer_pb2

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
HUGE = st.sampled_from([0.0, 1e-320, 5e-324, 1.0, 1e12, 1e18, 1e200, 1e308, 1.7976931348623157e308,
                        math.inf, -math.inf, math.nan, -1.0])
COUNTS = arrays(np.float64, st.tuples(st.integers(0, 4), st.integers(1, 4), st.just(5)),
                elements=st.one_of(ANY_FLOAT, HUGE))
PARAM = st.floats(-limits.MAX_PARAM, limits.MAX_PARAM, allow_nan=False)
POSITIVE = st.floats(1e-300, limits.MAX_PARAM, allow_nan=False)
NONNEG = st.floats(0, limits.MAX_PARAM, allow_nan=False)
PARAMS = st.builds(ScoringParams, win_reward=PARAM, tie_reward=PARAM, loss_reward=PARAM, prior_strength=POSITIVE,
                   tag_evidence=NONNEG, cost_scale_usd=NONNEG, level_weight_domain=NONNEG,
                   level_weight_topic=NONNEG, level_weight_attr=NONNEG)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counts=COUNTS, all_counts=arrays(np.float64, st.just(5), elements=st.one_of(ANY_FLOAT, HUGE)),
       params=PARAMS, data=st.data())
def test_no_non_finite_score_or_length_whatever_the_counts(counts, all_counts, params, data):
    models = counts.shape[1]
    all_counts = np.tile(all_counts, (models, 1))
    confidence = np.array(data.draw(st.lists(st.floats(0, 3.4e38), min_size=counts.shape[0],
                                             max_size=counts.shape[0])), dtype=np.float64)
    names = [f"domain:t{i}" if i % 2 else f"task:t{i}" for i in range(counts.shape[0])]
    with np.errstate(all="ignore"):
        scored = scoring.score_query(counts, all_counts, confidence, names, params)
    for part in (scored.scores, scored.contributions, scored.tag_weights, scored.expected_output_tokens, scored.prior):
        assert np.isfinite(part).all(), part
    assert (scored.expected_output_tokens <= limits.MAX_OUTPUT_TOKENS).all()
    # and as float32 on the wire (ScoreResponse.score / expected_output_tokens)
    assert np.isfinite(scored.scores.astype(np.float32)).all()


def test_counts_at_their_bounds_score_finitely():
    """The largest state LoadWeights and Feedback let in, with the most extreme parameters."""
    top = np.array([limits.MAX_COUNT] * 4 + [limits.MAX_TOTAL_OUTPUT_TOKENS])
    tiny = np.array([5e-324] * 4 + [limits.MAX_TOTAL_OUTPUT_TOKENS])
    counts = np.stack([np.stack([top, tiny]), np.stack([tiny, top])])
    params = ScoringParams(win_reward=limits.MAX_PARAM, tie_reward=-limits.MAX_PARAM, loss_reward=limits.MAX_PARAM,
                           prior_strength=1e-300, tag_evidence=limits.MAX_PARAM)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # not even an intermediate overflow
        scored = scoring.score_query(counts, top[None].repeat(2, 0), np.array([1.0, 1.0]), ["a", "b"], params)
    assert np.isfinite(scored.scores).all() and np.isfinite(scored.expected_output_tokens).all()


def test_the_routers_table_scores_finitely_from_huge_counts():
    base = Weights.load(DEFAULT_WEIGHTS_FILE)
    counts = {t: dict(per) for t, per in base.counts.items()}
    model = base.models[0].name
    counts["*"][model] = [limits.MAX_COUNT] * 4 + [limits.MAX_TOTAL_OUTPUT_TOKENS]
    counts["task:code-generation"] = {model: [5e-324, 0, 0, 5e-324, limits.MAX_TOTAL_OUTPUT_TOKENS]}
    table = ScoringTable.from_weights(Weights(base.models, base.params, counts))
    scored = table.score(["task:code-generation"], np.array([1.0]))
    assert np.isfinite(scored.scores).all() and np.isfinite(scored.expected_output_tokens).all()


def _weights_msg(mutate) -> scorer_pb2.Weights:
    msg = Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()
    mutate(msg)
    return msg


@pytest.mark.parametrize("mutate, needle", [
    (lambda m: setattr(m.counts[0], "output_tokens", 1e308), "output_tokens must be at most"),
    (lambda m: setattr(m.counts[0], "win", limits.MAX_COUNT * 2), "at most"),
    (lambda m: setattr(m.counts[0], "answers", math.inf), "finite counts"),
    (lambda m: setattr(m.models[0], "output_usd_per_mtok", 1e300), "output_usd_per_mtok"),
    (lambda m: setattr(m.params, "win_reward", 1e300), "win_reward"),
    (lambda m: setattr(m.params, "prior_strength", 1e300), "prior_strength"),
    (lambda m: [m.models.add(name=f"m{i}") for i in range(limits.MAX_MODELS)], "models, at most"),
    # a positive scale this small made every utility -inf (cost / 1e-320 overflows)
    (lambda m: setattr(m.params, "cost_scale_usd", 1e-320), "cost_scale_usd must be 0"),
    # the version names Redis keys and log lines: no newline, no 300 KB
    (lambda m: setattr(m, "version", "a\nb"), r"version name 'a\\nb' must be"),
    (lambda m: setattr(m, "version", "v" * 300_000), r"version name 'v{80}'\.\.\. \(300000 characters\)"),
    (lambda m: [m.counts.add(tag=f"task:t{i}", model=m.models[0].name) for i in range(limits.MAX_TAGS_TOTAL + 1)],
     "MAX_TAGS_TOTAL"),
])
def test_weights_out_of_bounds_are_refused(mutate, needle):
    with pytest.raises(WeightsError, match=needle):
        Weights.from_proto(_weights_msg(mutate))


def test_weights_too_big_for_one_message_are_refused():
    def mutate(m):
        for i in range(limits.MAX_TAGS_TOTAL // 2):
            for model in m.models:
                m.counts.add(tag=f"topic:{i:05d}-" + "x" * 150, model=model.name, win=1, answers=1)
    with pytest.raises(WeightsError, match="MAX_WEIGHTS_BYTES"):
        Weights.from_proto(_weights_msg(mutate))


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e308, limits.MAX_OUTPUT_TOKENS + 1])
def test_output_tokens_out_of_range_are_refused(value):
    with pytest.raises(InvalidRequest, match="output_tokens"):
        limits.check_output_tokens(value)
    assert limits.check_output_tokens(limits.MAX_OUTPUT_TOKENS) == limits.MAX_OUTPUT_TOKENS


def test_get_weights_names_are_deduplicated_and_capped():
    assert limits.check_get_weights_tags(["a"] * 100_000 + ["b"]) == ["a", "b"]
    with pytest.raises(InvalidRequest, match=str(limits.MAX_GET_WEIGHTS_TAGS)):
        limits.check_get_weights_tags([f"t{i}" for i in range(limits.MAX_GET_WEIGHTS_TAGS + 1)])


def test_stored_counts_that_are_not_finite_are_left_out_when_read():
    flat = ["a|win", "1", "a|answers", "2e+308", "b|win", "3", "b|answers", "3", "c|win", "nan", "d|win", "x"]
    assert parse_tag_hash(flat) == {"b": [3.0, 0.0, 0.0, 3.0, 0.0]}


# --- the broadcast (finding 2) ----------------------------------------------------------------
class _Store:
    """The three reads the broadcast makes, from memory."""

    def __init__(self):
        self.generation = 0
        self.weights = Weights.load(DEFAULT_WEIGHTS_FILE)

    async def change_marker(self):
        return self.weights.version, self.generation

    async def read_weights(self):
        return self.weights

    async def changes(self, version, generation, most):
        return self.weights.version, self.generation, None  # "read the whole weights"


def test_cancelling_thousands_of_watchers_at_any_moment_never_wedges_the_broadcast(monkeypatch):
    """With a heartbeat of a millisecond, cancellations land on every step of a watcher's wait
    (the Python 3.11 `wait_for(Condition.wait)` race left the lock held: every later watcher froze)."""
    monkeypatch.setattr(watch, "HEARTBEAT_SECONDS", 0.001)
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.001)

    async def scenario():
        store = _Store()
        broadcast = watch.WeightsBroadcast(store)
        errors = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))

        async def consume(received: list):
            async for update in broadcast.watch():
                received.append(update)

        for round_ in range(6):
            tasks = [asyncio.create_task(consume([])) for _ in range(1500)]
            for step in range(8):  # cancel in waves, at staggered moments of the heartbeats
                await asyncio.sleep(0.0005 * (round_ + step))
                for task in tasks[step::8]:
                    task.cancel()
            done, pending = await asyncio.wait(tasks, timeout=10)
            assert not pending, "watchers did not end when cancelled"
            failures = [t.exception() for t in done if not t.cancelled() and t.exception()]
            assert not failures, failures[:3]
            store.generation += 1  # a change to announce between rounds
        assert broadcast.watchers == 0
        received: list = []
        survivor = asyncio.create_task(consume(received))
        store.generation += 1
        deadline = loop.time() + 5
        while not any(u.HasField("weights") for u in received) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert any(u.HasField("weights") for u in received), "a new watcher got no update"
        start = loop.time()
        await broadcast.close()
        await asyncio.wait_for(survivor, 2)
        assert loop.time() - start < 1
        assert not [e for e in errors if "Lock" in str(e.get("exception"))], errors[:3]

    outcome: list = []

    def run():
        try:
            asyncio.run(scenario())
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the broadcast wedged: cancelled watchers never ended"
    if outcome[0] is not None:
        raise outcome[0]
