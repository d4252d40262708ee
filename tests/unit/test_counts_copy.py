"""The router's copy updated by changed cells scores exactly as a table built from the whole weights."""
import random

import numpy as np
import pytest

from tagrouter.bench.weights_deltas import synthetic_weights
from tagrouter.core import scoring
from tagrouter.core.counts_copy import CountsCopy
from tagrouter.core.pool import ScoringTable
from tagrouter.core.weights import WeightsError


def test_deltas_give_the_scores_of_the_whole_weights():
    weights = synthetic_weights(500, 6)
    copy = CountsCopy(weights)
    rng = random.Random(0)
    cells = [(f"t{rng.randrange(550):05d}", f"m{rng.randrange(6):02d}", [1.0, 2.0, 3.0, 6.0, 100.0]) for _ in range(200)]
    cells += [("*", "m01", [50.0, 5.0, 5.0, 60.0, 900.0]), ("t00003", "m02", None), ("t00004", "not-in-pool", [1] * 5)]
    copy.apply(cells)
    for tag, model, row in cells:
        if model == "not-in-pool":
            continue
        if row is None:
            weights.counts[tag].pop(model)
        else:
            weights.counts.setdefault(tag, {})[model] = row
    whole, live = ScoringTable.from_weights(weights), copy.table()
    names = [m.name for m in weights.models]
    for _ in range(100):
        tags = [f"t{rng.randrange(600):05d}" for _ in range(3)]
        confidence = np.array([0.9, 0.5, 0.3])
        a, b = whole.candidates(zip(tags, confidence), names), live.candidates(zip(tags, confidence), names)
        assert np.allclose(a.scores, b.scores) and np.allclose(a.expected_output_tokens, b.expected_output_tokens)


def test_a_change_after_a_query_is_scored_from_the_new_counts():
    # the table computes every tag's statistics on its first query: a change must not leave them stale
    weights = synthetic_weights(50, 4)
    copy = CountsCopy(weights)
    names = [m.name for m in weights.models]
    pairs = [("t00001", 0.8), ("t00002", 0.4), ("never-seen", 0.9)]
    before = copy.table().candidates(pairs, names)
    copy.apply([("*", "m01", [90.0, 5.0, 5.0, 100.0, 900.0]), ("t00001", "m00", [0.0, 0.0, 40.0, 40.0, 4000.0])])
    weights.counts["*"]["m01"] = [90.0, 5.0, 5.0, 100.0, 900.0]
    weights.counts["t00001"]["m00"] = [0.0, 0.0, 40.0, 40.0, 4000.0]
    after, whole = copy.table().candidates(pairs, names), ScoringTable.from_weights(weights).candidates(pairs, names)
    assert not np.allclose(before.scores, after.scores)
    assert np.allclose(after.scores, whole.scores) and np.allclose(after.expected_output_tokens,
                                                                   whole.expected_output_tokens)


def test_the_table_scores_as_the_rule_on_the_query_s_own_counts():
    # the table's precomputed rows against `score_query` on the query's tags alone (what Score computes)
    weights = synthetic_weights(80, 5)
    table = ScoringTable.from_weights(weights)
    tags, confidence = ["t00007", "unknown-tag", "t00011"], np.array([0.7, 0.9, 0.2])
    zero = np.zeros(table.counts.shape[1:])
    own = np.stack([table.counts[table.rows[t]] if t in table.rows else zero for t in tags])
    expected = scoring.score_query(own, table.all_counts, confidence, tags, table.params)
    got = table.score(tags, confidence)
    for field in ("scores", "contributions", "tag_weights", "expected_output_tokens", "prior"):
        assert np.allclose(getattr(got, field), getattr(expected, field)), field


def test_a_cell_out_of_the_limits_is_refused():
    copy = CountsCopy(synthetic_weights(5, 2))
    with pytest.raises(WeightsError, match="t00001"):
        copy.apply([("t00001", "m00", [float("nan"), 0, 0, 0, 0])])
