"""`tagrouter eval --export-predictions`: the file re-scores to RESULT.json's AUC without the project's code."""
import json
from collections import defaultdict

import numpy as np
import pytest

from tests.conftest import needs_shared
from tests.integration.test_cli import tagrouter
from tests.integration.test_eval import POOL, small_suite


def auc(choices, accept, cost):
    """ROUTING.md section 3, written out again: the area under the upper frontier of (cost, AR) of
    every knob point plus the cheapest and the priciest single model, cost normalised to [0, 1]."""
    rows = np.arange(len(accept))
    singles = [(cost[:, m].sum(), accept[:, m].mean()) for m in range(accept.shape[1])]
    cheapest = min(singles, key=lambda p: (p[0], -p[1]))
    priciest = min(singles, key=lambda p: (-p[0], -p[1]))
    points = [(cost[rows, c].sum(), accept[rows, c].mean()) for c in np.asarray(choices)] + [cheapest, priciest]
    lo, hi = cheapest[0], priciest[0]
    top = defaultdict(lambda: -1.0)  # normalised cost -> best AR among points no cheaper ones beat
    best = -1.0
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if a > best + 1e-12:
            best = a
            x = max((c - lo) / (hi - lo), 0.0)
            top[x] = max(top[x], a)
    xs, ys = np.array(sorted(top)), np.array([top[x] for x in sorted(top)])
    x = np.append(xs[xs < 1], 1.0)
    y = np.append(ys[xs < 1], np.interp(1.0, xs, ys) if xs[-1] >= 1 else ys[-1])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


@needs_shared()
def test_exported_predictions_rescore_to_the_reported_auc(tmp_path):
    suite = small_suite(tmp_path / "three", POOL)
    out = tagrouter("eval", "--suite", str(suite), "--out", str(tmp_path / "r.json"), "--quiet",
                    "--export-predictions", str(tmp_path / "p.json"))
    assert out.returncode == 0, out.stderr
    doc, pred = (json.loads((tmp_path / f).read_text()) for f in ("r.json", "p.json"))
    meta = json.loads((suite / "suite.json").read_text())
    assert pred["models"] == list(meta["models"]) and pred["test_ids"] == meta["splits"]["test"]
    score, cost = {}, {}
    for line in (suite / "outcomes.jsonl").read_text().splitlines():
        row = json.loads(line)
        score[row["query_id"], row["model"]] = row["score"]
        cost[row["query_id"], row["model"]] = row["cost_usd"]
    s = np.array([[score[q, m] for m in pred["models"]] for q in pred["test_ids"]])
    c = np.array([[cost[q, m] for m in pred["models"]] for q in pred["test_ids"]])
    others = np.array([[max(np.delete(r, m)) for m in range(len(r))] for r in s])
    accept = s >= others - meta["tie_margin"] - 1e-12
    assert set(pred["routers"]) == {"tagrouter", "knn", "mf", "forc"}
    for name, r in pred["routers"].items():
        n, m = len(pred["test_ids"]), len(pred["models"])
        assert np.shape(r["scores"]) == np.shape(r["estimated_costs"]) == (n, m)
        assert all(len(k) == n for k in r["choices"])
        assert auc(r["choices"], accept, c) == pytest.approx(doc["routers"][name]["auc"], abs=1e-9), name
