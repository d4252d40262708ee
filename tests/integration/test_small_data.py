"""`tagrouter eval --train-size N --seed S` and the small-data table (tagrouter/offline/small_data.py)."""
import json

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
