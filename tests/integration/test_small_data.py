"""`tagrouter eval --train-size N --seed S` and the small-data table (tagrouter/offline/small_data.py)."""
import json

import pytest

from tests.conftest import needs_shared
from tests.integration.test_cli import tagrouter
from tests.integration.test_eval import POOL, small_suite


@needs_shared()
def test_train_size_cuts_train_and_keeps_valid_and_test(tmp_path):
    suite = small_suite(tmp_path / "three", POOL)
    out = tagrouter("eval", "--suite", str(suite), "--out", str(tmp_path / "r.json"), "--quiet",
                    "--train-size", "40", "--seed", "2")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["queries"] == {"train": 40, "valid": 30, "test": 40}
    too_many = tagrouter("eval", "--suite", str(suite), "--out", str(tmp_path / "x.json"), "--quiet",
                         "--train-size", "91")
    assert too_many.returncode == 2 and "--train-size" in too_many.stderr


@needs_shared()
def test_small_data_writes_mean_auc_and_paired_calls_for_every_router(tmp_path):
    from tagrouter.offline import small_data

    suite = small_suite(tmp_path / "three", POOL)
    assert small_data.main(["--suites", str(suite), "--sizes", "40", "--seeds", "2", "--out",
                            str(tmp_path / "S.md")]) == 0
    rows = json.loads((tmp_path / "S.json").read_text())
    assert [(r["train"], r["seeds"]) for r in rows] == [(40, 2)]
    r = rows[0]
    assert set(r["mean_auc"]) == {"tagrouter", "knn", "mf", "forc", "random"}
    assert all(len(v) == 2 for v in r["auc_per_seed"].values())
    for name, c in r["against"].items():
        assert c["call"] in ("ahead", "level", "behind") and c["interval"][0] <= c["interval"][1], name
    assert "TagRouter vs random" in (tmp_path / "S.md").read_text()


@needs_shared()
def test_design_rows_score_the_train_rows_left_out_and_never_read_test(tmp_path):
    import dataclasses

    import numpy as np

    from tagrouter.offline import design_rows
    from tagrouter.offline.prepare import configured_tagger, prepare
    from tagrouter.offline.suite import load_suite

    prep = prepare(load_suite(small_suite(tmp_path / "three", POOL)), configured_tagger(), show_progress=False)
    routers = [design_rows.VARIANTS["parsimony"]()]
    aucs = design_rows.one_cut(prep, 40, 1, routers)
    assert set(aucs) == {"parsimony", "random"} and all(0 <= a <= 1 for a in aucs.values())
    # every outcome, cost and length of the test split turned over: nothing read from test, nothing changes
    test = prep.suite.rows("test")
    accept, outcomes = prep.accept.copy(), prep.outcomes.copy()
    accept[test], outcomes[test] = ~accept[test], outcomes[test][..., ::-1]
    suite = prep.suite
    turned = {name: getattr(suite, name).copy() for name in ("scores", "costs", "input_tokens", "output_tokens")}
    for name, values in turned.items():
        values[test] = values[test][::-1] * (-1 if name == "scores" else 3)
    flipped = dataclasses.replace(prep, accept=accept, outcomes=outcomes, suite=dataclasses.replace(suite, **turned))
    assert design_rows.one_cut(flipped, 40, 1, routers) == aucs
    # and the rows scored are the train rows left out: turning those over changes the router's figure
    left_out = np.setdiff1d(suite.rows("train"), design_rows.with_train_size(suite, 40, 1).rows("train"))
    accept = prep.accept.copy()
    accept[left_out] = ~accept[left_out]
    assert design_rows.one_cut(dataclasses.replace(prep, accept=accept), 40, 1, routers)["parsimony"] != aucs["parsimony"]


@needs_shared()
def test_design_rows_table_names_every_variant(tmp_path):
    from tagrouter.offline import design_rows

    suite = small_suite(tmp_path / "three", POOL)
    assert design_rows.main(["--suites", str(suite), "--sizes", "40", "0.5", "--seeds", "2",
                             "--out", str(tmp_path / "D.md")]) == 0
    rows = json.loads((tmp_path / "D.json").read_text())
    assert [(r["train"], r["left_out"]) for r in rows] == [(40, 50), (45, 45)]
    assert set(rows[0]["mean_auc"]) == {"tagrouter", "knn", "mf", "forc", "random", "parsimony", "cautious"}
    for v in rows[0]["variants"].values():
        assert v["seeds_higher"] + v["seeds_equal"] + v["seeds_lower"] == 2
    assert "parsimony - TagRouter (seeds higher / equal / lower)" in (tmp_path / "D.md").read_text()
    # sizes that leave nothing to score, or are neither a count nor a share, are refused by name
    for bad in ("90", "1.5", "0"):
        with pytest.raises(SystemExit) as exit_:
            design_rows.main(["--suites", str(suite), "--sizes", bad, "--out", str(tmp_path / "X.md")])
        assert exit_.value.code == 2
