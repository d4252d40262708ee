"""The cost-estimate errors on a tiny case, and the length prior strength in the weights."""
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tagrouter.core.limits import MAX_PARAM
from tagrouter.core.scoring import ScoringParams, answer_lengths
from tagrouter.core.weights import ModelPrice, Weights, WeightsError, validate
from tagrouter.offline import cost_error
from tagrouter.offline.suite import ModelInfo, Suite


def test_mdape_and_total_error_on_a_tiny_case():
    estimated = np.array([[2.0, 1.0], [1.0, 1.0], [5.0, 0.5]])
    actual = np.array([[1.0, 1.0], [2.0, 2.0], [0.0, 1.0]])  # the third query cost model 0 nothing
    e = cost_error.errors(estimated, actual)
    # model 0: |2-1|/1 = 1, |1-2|/2 = .5 (the free query left out) -> median .75; total 8 / 3 - 1
    # model 1: 0, .5, .5 -> median .5; total 2.5 / 4 - 1
    assert e["mdape"] == pytest.approx([0.75, 0.5])
    assert e["total_error"] == pytest.approx([8 / 3 - 1, 2.5 / 4 - 1])
    assert cost_error.selection_loss(estimated, actual) == pytest.approx(
        (0.75 + 0.5) / 2 + (abs(8 / 3 - 1) + abs(2.5 / 4 - 1)) / 2)
    exact = cost_error.errors(actual[:2], actual[:2])
    assert exact["mdape"] == pytest.approx([0, 0]) and exact["total_error"] == pytest.approx([0, 0])


def _suite(costs, output_tokens):
    q = len(costs)
    return Suite("s", Path("."), 0.0, "correctness", [ModelInfo("a", 1.0, 2.0), ModelInfo("b", 3.0, 4.0)],
                 [str(i) for i in range(q)], ["x"] * q, [None] * q, np.zeros((q, 2)), np.array(costs, dtype=float),
                 np.full((q, 2), 10.0), np.array(output_tokens, dtype=float),
                 {"train": np.arange(q - 1), "valid": np.array([], int), "test": np.array([q - 1])})


def test_real_costs_are_told_from_token_prices_and_naive_is_the_train_mean():
    tokens = [[10, 20], [30, 40], [50, 60]]
    priced = [[(10 * 1 + t[0] * 2) * 1e-6, (10 * 3 + t[1] * 4) * 1e-6] for t in tokens]
    assert not cost_error.real_cost_models(_suite(priced, tokens)).any()
    real = [[c[0], c[1] * 1.5] for c in priced]
    assert list(cost_error.real_cost_models(_suite(real, tokens))) == [False, True]
    naive = cost_error.naive_output_tokens(_suite(priced, tokens), np.array([2]))
    assert naive.tolist() == [[20.0, 30.0]]  # the train rows' mean, not the test row's


def test_length_prior_strength_smooths_answer_lengths_alone():
    counts = np.array([[[1, 0, 0, 2, 200.0]]])  # one tag, one model: 2 answers of 100 tokens
    all_counts = np.array([[1, 0, 0, 10, 500.0]])  # overall mean 50
    base = ScoringParams(prior_strength=2.0)
    _, today = answer_lengths(counts, all_counts, base)
    assert today[0, 0] == pytest.approx((200 + 2 * 50) / 4)  # 0: the scores' prior strength
    _, blended = answer_lengths(counts, all_counts, dataclasses.replace(base, length_prior_strength=8.0))
    assert blended[0, 0] == pytest.approx((200 + 8 * 50) / 10)
    _, mean = answer_lengths(counts, all_counts, dataclasses.replace(base, length_prior_strength=MAX_PARAM))
    assert mean[0, 0] == pytest.approx(50, rel=1e-4)


def test_old_weights_keep_their_version_and_load_with_todays_estimate():
    counts = {"*": {"a": [1, 0, 0, 1, 10]}}
    w = Weights([ModelPrice("a", 1.0, 1.0)], ScoringParams(), counts)
    old_params = {k: v for k, v in dataclasses.asdict(ScoringParams()).items() if k != "length_prior_strength"}
    old_doc = {"models": [dataclasses.asdict(m) for m in w.models], "params": old_params, "counts": w.counts}
    assert w.version == hashlib.sha256(json.dumps(old_doc, sort_keys=True).encode()).hexdigest()[:16]
    msg = Weights([ModelPrice("a", 1.0, 1.0)], ScoringParams(length_prior_strength=30.0), counts).to_proto()
    assert Weights.from_proto(msg).params.length_prior_strength == 30.0
    msg.params.ClearField("length_prior_strength")  # a message from before the field
    assert Weights.from_proto(msg).params.length_prior_strength == 0.0
    with pytest.raises(WeightsError, match="length_prior_strength"):
        validate(Weights([ModelPrice("a", 1.0, 1.0)], ScoringParams(length_prior_strength=-1.0), counts), "w")
