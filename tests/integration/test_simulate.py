"""`tagrouter simulate` on a small synthetic suite: a real stack, four tenants, the SIM.json the issue asks for."""
from __future__ import annotations

import json
import time

import numpy as np

from tagrouter import cli
from tagrouter.core import tenancy
from tagrouter.offline import pacing

MODELS = {"big": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 30.0},
          "small": {"input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.5}}
TOPICS = ("Write a Python function that sorts a list of numbers", "Translate this sentence into French please",
          "Prove that the square root of two is irrational", "Summarise the plot of a famous novel briefly")


def write_suite(folder, n_per_split=(24, 8, 12)):
    """Hard topics (proofs, code) only the big model gets right; easy ones both do; costs scale with tokens."""
    folder.mkdir(parents=True)
    rows, splits, q = [], {"train": [], "valid": [], "test": []}, 0
    for split, n in zip(("train", "valid", "test"), n_per_split):
        for i in range(n):
            topic = q % len(TOPICS)
            qid, tokens_in, tokens_out = f"q{q}", 20 + 3 * i, 100 + 40 * topic
            for model, price in MODELS.items():
                right = model == "big" or topic in (1, 3)
                cost = (tokens_in * price["input_usd_per_mtok"] + tokens_out * price["output_usd_per_mtok"]) / 1e6
                rows.append({"query_id": qid, "query": f"{TOPICS[topic]} (case {q})", "model": model,
                             "score": 1.0 if right else 0.0, "input_tokens": tokens_in, "output_tokens": tokens_out,
                             "cost_usd": cost, "tokens_estimated": False})
            splits[split].append(qid)
            q += 1
    doc = {"name": "sim-tiny", "description": "", "source": "synthetic", "score_kind": "correctness",
           "tie_margin": 0.0, "models": MODELS, "splits": splits}
    (folder / "suite.json").write_text(json.dumps(doc))
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_simulate_reports_every_mode_against_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(pacing, "CACHE_DIR", tmp_path / "cache")
    suite = write_suite(tmp_path / "suite")
    out = tmp_path / "SIM.json"
    started = time.monotonic()
    assert cli.main(["simulate", "--suite", str(suite), "--budget-pct", "40", "--order", "drift",
                     "--max-seconds", "120", "--out", str(out)]) == 0
    assert time.monotonic() - started < 300
    result = json.loads(out.read_text())
    # the budget: 40% of always the big model on the 12 test queries
    test_rows = [json.loads(line) for line in (suite / "outcomes.jsonl").read_text().splitlines()]
    big = sum(r["cost_usd"] for r in test_rows if r["model"] == "big" and int(r["query_id"][1:]) >= 32)
    assert abs(result["budget_usd"] - 0.4 * big) < 1e-9
    assert set(result["modes"]) == {"pace", "downgrade", "hard", "calibrated"}
    for m in result["modes"].values():
        assert set(m) >= {"spend_usd", "spend_pct_of_budget", "accept_rate", "crossed_cap"}
        assert 0 <= m["accept_rate"] <= 1
        assert abs(m["spend_pct_of_budget"] - 100 * m["spend_usd"] / result["budget_usd"]) < 1e-6
        assert m["crossed_cap"] == (m["spend_usd"] > result["budget_usd"] + 1e-9)
    # the capped modes hold the cap up to one request's estimate error; every tenant was settled
    for mode in ("pace", "downgrade"):
        assert result["modes"][mode]["spend_pct_of_budget"] <= 100 + 100 * max(
            r["cost_usd"] for r in test_rows) / result["budget_usd"]
    assert result["modes"]["calibrated"]["refused"] == 0 and result["modes"]["calibrated"]["spend_usd"] > 0
    assert result["queries"] == 12 and result["order"] == "drift" and result["split"] == "test"
    for mode in ("downgrade", "hard"):  # pace against each, with its paired interval
        d = result["pace_against"][mode]
        gap = result["modes"]["pace"]["accept_rate"] - result["modes"][mode]["accept_rate"]
        assert abs(d["difference"] - gap) < 1e-9 and d["interval"][0] <= d["difference"] <= d["interval"][1]
        assert d["call"] in ("ahead", "level", "behind")


def test_the_paired_accept_rate_interval_calls_a_clear_gap_and_a_tie():
    from tagrouter.offline.simulate import paired_accept_rate

    ones, zeros = np.ones(200), np.zeros(200)
    assert paired_accept_rate(ones, zeros)["call"] == "ahead"
    assert paired_accept_rate(zeros, ones)["call"] == "behind"
    mixed = np.tile([1.0, 0.0], 100)
    tie = paired_accept_rate(mixed, mixed[::-1].copy())  # the same rate, other queries
    assert tie["difference"] == 0.0 and tie["call"] == "level"


def test_design_streams_are_cut_from_train_alone_and_replay(tmp_path, monkeypatch):
    """The margin rule's design streams (`pacing.design_routings`): per cut, weights fitted on one half of
    train and the other half streamed; no valid or test row is ever streamed."""
    from tagrouter.offline.prepare import configured_tagger
    from tagrouter.offline.suite import load_suite

    monkeypatch.setattr(pacing, "CACHE_DIR", tmp_path / "cache")
    suite = load_suite(write_suite(tmp_path / "suite"))
    train = set(map(int, suite.rows("train")))
    design = pacing.design_routings(suite, configured_tagger(), [30.0, 60.0], seeds=2, cuts=2)
    assert len(design) == 2 * 2 * len(pacing.ORDERS) * 2  # cuts x seeds x orders x budgets
    halves = {tuple(map(int, routing.rows)) for routing, _, _ in design}
    assert len(halves) == 2  # one streamed half per cut, and the cuts differ
    for half in halves:
        assert set(half) <= train and len(half) == len(train) - len(train) // 2
    for routing, positions, budget in design:
        assert sorted(positions) == list(range(len(routing.rows))) and budget > 0
    point = pacing.measure(design, tenancy.PACE_RECENT, tenancy.PACE_AIM, tenancy.PACE_LEAD, tenancy.MARGIN_DECAY)
    assert 0 <= point["accept_rate"] <= 1 and point["within"] > 0
    # Twelve requests a stream: one whose cost exceeds its estimate by more than any excess seen before it
    # can cross the cap whatever the mode (on a CPU without VNNI the tags, and so the estimates, move enough
    # for one stream to). Pace crosses only where refusing what the margin cannot afford (hard) does too,
    # and by no more.
    for routing, positions, budget in design:
        paced = pacing.replay(routing, positions, budget, "pace")["spend_pct"]
        assert paced <= 100 or paced <= pacing.replay(routing, positions, budget, "hard")["spend_pct"]
