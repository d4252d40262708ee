"""The router's copy updated by changed cells scores exactly as a table built from the whole weights."""
import random

import numpy as np
import pytest

from tagrouter.bench.weights_deltas import synthetic_weights
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


def test_a_cell_out_of_the_limits_is_refused():
    copy = CountsCopy(synthetic_weights(5, 2))
    with pytest.raises(WeightsError, match="t00001"):
        copy.apply([("t00001", "m00", [float("nan"), 0, 0, 0, 0])])
