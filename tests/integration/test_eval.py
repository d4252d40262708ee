"""`tagrouter eval`, `calibrate` and `fit --add` on small suites written by the test (real model)."""
import json

import numpy as np
import pytest

from tests.conftest import SUITES, needs_shared
from tests.integration.test_cli import tagrouter

POOL = ["gpt4_1106_preview", "claude-instant-1.2", "Mixtral-8x7B-Instruct-v0.1_concise"]
ROUTER_KEYS = {"auc", "pauc", "best_ar", "best_ar_cost_pct", "uplift_pct", "cost_to_match_pct", "curve"}


def small_suite(folder, models, n=(90, 30, 40)):
    """The first queries of ae2-multi, for `models` only, in the canonical format."""
    meta = json.loads((SUITES / "ae2-multi" / "suite.json").read_text())
    ids = [*meta["splits"]["train"][: n[0]], *meta["splits"]["valid"][: n[1]], *meta["splits"]["test"][: n[2]]]
    keep = set(ids)
    rows = [line for line in (SUITES / "ae2-multi" / "outcomes.jsonl").read_text().splitlines()
            if (r := json.loads(line))["query_id"] in keep and r["model"] in models]
    meta["models"] = {m: meta["models"][m] for m in models}
    meta["name"] = "small-" + str(len(models))
    meta["splits"] = {"train": ids[: n[0]], "valid": ids[n[0]: n[0] + n[1]], "test": ids[n[0] + n[1]:]}
    folder.mkdir(parents=True)
    (folder / "suite.json").write_text(json.dumps(meta))
    (folder / "outcomes.jsonl").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def suite3(tmp_path_factory):
    return small_suite(tmp_path_factory.mktemp("s") / "three", POOL)


@needs_shared()
def test_eval_reports_every_router_on_a_suite_it_has_never_seen(suite3, tmp_path):
    out = tagrouter("eval", "--suite", str(suite3), "--out", str(tmp_path / "r.json"), "--plot",
                    str(tmp_path / "c.png"), "--quiet")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["suite"] == "small-3"
    assert {"tagrouter", "knn", "mf", "forc", "random"} <= set(doc["routers"])
    for name, r in doc["routers"].items():
        assert ROUTER_KEYS <= set(r), name
        assert 0 <= r["auc"] <= 1 and r["curve"] and all(len(p) == 2 for p in r["curve"])
    assert set(doc["single_models"]) == set(POOL)
    assert {"ar", "quality", "cost_usd"} <= set(doc["single_models"][POOL[0]])
    assert doc["oracle"]["ar"] == 1.0
    room = doc["headroom"]  # measured on the selection rows: never more than the queries the best model fails
    assert room["best_model"] in POOL and 0 <= room["best_gain_queries"] <= room["rescuable"] <= room["best_model_misses"]
    assert (tmp_path / "c.png").stat().st_size > 10_000
    # random mixing of single models never beats their hull: a router with AUC under it learned nothing
    assert doc["routers"]["random"]["cost_to_match_pct"] == pytest.approx(100.0)
    boot = doc["paired_bootstrap"]  # TagRouter against every other router, on the same resamples
    assert boot["resamples"] == 1000 and set(boot["against"]) == {"knn", "mf", "forc", "random"}
    for name, c in boot["against"].items():
        low, high = c["interval"]
        assert c["auc_difference"] == pytest.approx(doc["routers"]["tagrouter"]["auc"] - doc["routers"][name]["auc"])
        assert low <= high and c["call"] == ("ahead" if low > 0 else "behind" if high < 0 else "level")
    assert set(doc["must_show"]) >= {"not_behind_random_or_any_baseline", "ahead_of_every_baseline"}


@needs_shared()
def test_eval_of_a_malformed_suite_names_file_line_and_key(suite3, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "suite.json").write_text((suite3 / "suite.json").read_text())
    lines = (suite3 / "outcomes.jsonl").read_text().splitlines()
    row = json.loads(lines[4])
    row["score"] = 1.5
    lines[4] = json.dumps(row)
    (bad / "outcomes.jsonl").write_text("\n".join(lines) + "\n")
    out = tagrouter("eval", "--suite", str(bad), "--out", str(tmp_path / "r.json"), "--quiet")
    assert out.returncode == 2
    assert f"{bad / 'outcomes.jsonl'}:5:" in out.stderr and "'score'" in out.stderr
    assert not (tmp_path / "r.json").exists()


@needs_shared()
def test_fit_two_models_then_add_a_third_gives_the_counts_of_fitting_all_three(suite3, tmp_path):
    suite2 = small_suite(tmp_path / "two", POOL[:2])
    assert tagrouter("fit", "--suite", str(suite2), "--out", str(tmp_path / "two.json"), "--no-tune").returncode == 0
    added = tagrouter("fit", "--suite", str(suite3), "--add", POOL[2], "--weights", str(tmp_path / "two.json"),
                      "--out", str(tmp_path / "added.json"))
    assert added.returncode == 0, added.stderr
    assert tagrouter("fit", "--suite", str(suite3), "--out", str(tmp_path / "all.json"), "--no-tune").returncode == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("added.json", "all.json"))
    assert [m["name"] for m in a["models"]] == POOL
    assert a["counts"].keys() == b["counts"].keys()
    for tag, per_model in b["counts"].items():
        for model, row in per_model.items():
            assert np.allclose(a["counts"][tag][model], row), (tag, model)


@needs_shared()
def test_calibrate_returns_a_knob_that_meets_the_budget(suite3, tmp_path):
    assert tagrouter("fit", "--suite", str(suite3), "--out", str(tmp_path / "w.json"), "--no-tune").returncode == 0
    out = tagrouter("calibrate", "--suite", str(suite3), "--weights", str(tmp_path / "w.json"),
                    "--target-cost-pct", "40", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["met"] and got["cost_pct"] <= 40 and got["cost_weight"] > 0
    share = tagrouter("calibrate", "--suite", str(suite3), "--weights", str(tmp_path / "w.json"),
                      "--target-top-share", "0.25", "--json")
    assert json.loads(share.stdout)["top_share"] <= 0.25


@needs_shared()
def test_operating_points_price_the_prompt_as_the_suite_recorded_it(suite3, tmp_path):
    """A suite's query may be shorter than the prompt as sent (RouterBench's drops its task's fixed
    prefix); `fit` calibrates the knob at the recorded input tokens, so `operating-points` and
    `calibrate` route the split at them too (as_sent), not at the tagger's count of the shorter query,
    which stays the price of a Route carrying the query alone (`tagrouter simulate`)."""
    from tagrouter.core.decision import USD_PER_MTOK
    from tagrouter.core.weights import Weights
    from tagrouter.offline.calibration import split_routing
    from tagrouter.offline.prepare import configured_tagger
    from tagrouter.offline.suite import load_suite

    longer = tmp_path / "longer"
    longer.mkdir()
    (longer / "suite.json").write_text((suite3 / "suite.json").read_text())
    rows = [json.loads(line) for line in (suite3 / "outcomes.jsonl").read_text().splitlines()]
    (longer / "outcomes.jsonl").write_text("".join(json.dumps(r | {"input_tokens": r["input_tokens"] + 300}) + "\n"
                                                   for r in rows))
    assert tagrouter("fit", "--suite", str(suite3), "--out", str(tmp_path / "w.json"), "--no-tune").returncode == 0
    weights, tagger = Weights.load(tmp_path / "w.json"), configured_tagger()
    short, long = (split_routing(load_suite(s), weights, tagger, "test", as_sent=True) for s in (suite3, longer))
    prices_in = np.array([m.input_usd_per_mtok for m in weights.models])
    assert np.allclose(long.estimated - short.estimated, 300 * prices_in * USD_PER_MTOK)
    alone = [split_routing(load_suite(s), weights, tagger, "test").estimated for s in (suite3, longer)]
    assert np.array_equal(*alone)
