"""Counting: a model joins the pool by adding its outcomes, and gets the same counts as a full fit."""
import numpy as np

from tagrouter.core.scoring import pairwise_outcomes
from tagrouter.offline.fit import count_outcomes, fit_added_model, fit_counts, merge_counts
from tagrouter.offline.suite import load_suite
from tests.unit.test_suite import row, write_suite

MODELS = {"a": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2},
          "b": {"input_usd_per_mtok": 3, "output_usd_per_mtok": 4},
          "c": {"input_usd_per_mtok": 5, "output_usd_per_mtok": 6}}


def suite_of(tmp_path, models):
    rng = np.random.default_rng(7)
    rows, ids = [], [f"q{i}" for i in range(40)]
    for qid in ids:
        for m in models:
            rows.append(row(qid, m, float(rng.integers(0, 3)) / 2, output_tokens=int(rng.integers(5, 50))))
    folder = write_suite(tmp_path / "-".join(models), rows, models={m: MODELS[m] for m in models}, tie_margin=0.0,
                         splits={"train": ids[:30], "valid": ids[30:35], "test": ids[35:]})
    return load_suite(folder)


def tags_for(suite):
    return [[f"task:{i % 3}", f"topic:{i % 5}"] for i in range(len(suite.queries))]


def test_fitting_two_models_then_adding_a_third_equals_fitting_all_three(tmp_path):
    three = suite_of(tmp_path, ["a", "b", "c"])
    tags = tags_for(three)
    rows = three.rows("train")
    two_cols = [0, 1]
    two = count_outcomes([tags[r] for r in rows], pairwise_outcomes(three.scores[np.ix_(rows, two_cols)], 0.0),
                         three.output_tokens[np.ix_(rows, two_cols)], ["a", "b"])
    joined = merge_counts(two, fit_added_model(three, tags, ["a", "b"], "c"))
    at_once = fit_counts(three, tags)
    assert joined.keys() == at_once.keys()
    for tag, per_model in at_once.items():
        for model, counts in per_model.items():
            assert np.allclose(joined[tag][model], counts), (tag, model)


def test_adding_a_model_already_in_the_pool_is_refused(tmp_path):
    three = suite_of(tmp_path, ["a", "b", "c"])
    try:
        fit_added_model(three, tags_for(three), ["a", "b"], "b")
    except ValueError as err:
        assert "already in the pool" in str(err)
    else:
        raise AssertionError("no error")
