"""The paired interval of TagRouter against itself under a change, from two prediction exports."""
import json

import numpy as np
import pytest

from tagrouter.offline.paired_exports import compare_exports
from tagrouter.offline.paths import suites_dir
from tagrouter.offline.suite import load_suite


@pytest.fixture(scope="module")
def suite_and_export():
    folder = suites_dir() / "ae2-multi"
    if not folder.is_dir():
        pytest.skip("no shared suites")
    suite = load_suite(folder)
    test_ids = [suite.query_ids[i] for i in suite.rows("test")]
    cheapest = int(np.argmin(suite.costs.sum(axis=0)))
    choices = [[cheapest] * len(test_ids), [int(np.argmax(suite.costs.sum(axis=0)))] * len(test_ids)]
    return folder, {"models": suite.model_names, "test_ids": test_ids, "routers": {"tagrouter": {"choices": choices}}}


def test_an_unchanged_routing_is_level_with_itself(suite_and_export):
    folder, export = suite_and_export
    out = compare_exports(folder, export, json.loads(json.dumps(export)))
    assert out["after_minus_before"] == 0 and out["interval"] == [0, 0] and out["call"] == "level"


def test_a_routing_that_always_takes_the_cheapest_model_is_behind(suite_and_export):
    folder, export = suite_and_export
    worse = json.loads(json.dumps(export))
    worse["routers"]["tagrouter"]["choices"] = [export["routers"]["tagrouter"]["choices"][0]]  # the cheap point only
    out = compare_exports(folder, export, worse)
    assert out["after_minus_before"] <= 0 and out["auc_before"] > 0


def test_exports_of_different_splits_are_refused(suite_and_export):
    folder, export = suite_and_export
    other = dict(export, test_ids=export["test_ids"][::-1])
    with pytest.raises(ValueError, match="same suite"):
        compare_exports(folder, export, other)
