"""The online path learns what the offline path learns (issue 15): `tagrouter replay` sends a suite's
train outcomes through Feedback into a store holding only the pool; the weights equal `tagrouter
fit`'s counts, and a router serving them routes every test query as one serving fit's weights."""
import json
import time

import grpc
import numpy as np
import pytest

from tagrouter.core.weights import Weights
from tagrouter.offline import quality_metrics as metrics
from tagrouter.offline.replay import counts_equal
from tagrouter.offline.suite import load_suite
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tests.integration.test_cli import tagrouter

MODELS = {"big-model": (10.0, 30.0), "mid-model": (1.0, 2.0), "small-model": (0.1, 0.2)}
KINDS = [
    ("Write a Python function that {} and add unit tests.", ["sorts a list of tuples", "parses a CSV file",
                                                             "reverses a linked list", "merges two dicts"]),
    ("Solve for x: {} and show every step.", ["3x + 7 = 22", "x^2 - 5x + 6 = 0", "2(x - 4) = 10", "x/3 + 2 = 9"]),
    ("Write a short poem about {}.", ["the sea at night", "autumn leaves", "a city in the rain", "old friends"]),
    ("Summarise the history of {} in three sentences.", ["the Roman Empire", "the printing press",
                                                         "the internet", "vaccination"]),
    ("Translate into French: {}", ["Where is the train station?", "I would like a coffee, please.",
                                   "The meeting is tomorrow.", "How much does this cost?"]),
]
COST_WEIGHTS = (0.0, 0.3, 1.0, 3.0, 10.0, 100.0)


def synthetic_suite(folder, n=(60, 10, 30), seed=0):
    """A small suite in the canonical format: templated queries of five kinds, three models whose
    quality depends on the kind (so the counts carry a signal), list prices, judge-like scores."""
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.2, 0.9, size=(len(KINDS), len(MODELS)))
    rows, ids = [], []
    for q in range(sum(n)):
        kind = q % len(KINDS)
        template, fills = KINDS[kind]
        text = template.format(fills[(q // len(KINDS)) % len(fills)]) + f" (case {q})"
        qid = f"q{q:03d}"
        ids.append(qid)
        for m, (model, (p_in, p_out)) in enumerate(MODELS.items()):
            score = float(np.clip(skill[kind, m] + rng.normal(0, 0.25), 0, 1))
            tin, tout = len(text) // 4 + 1, int(rng.integers(20, 400))
            rows.append({"query_id": qid, "query": text, "model": model, "score": round(score, 3),
                         "input_tokens": tin, "output_tokens": tout, "tokens_estimated": True,
                         "cost_usd": (tin * p_in + tout * p_out) / 1e6, "task": f"kind{kind}"})
    meta = {"name": "replay-synthetic", "description": "synthetic", "source": "tests", "score_kind": "judge_1to10",
            "tie_margin": 0.05,
            "models": {k: {"input_usd_per_mtok": a, "output_usd_per_mtok": b, "price_source": "test"}
                       for k, (a, b) in MODELS.items()},
            "splits": {"train": ids[: n[0]], "valid": ids[n[0]: n[0] + n[1]], "test": ids[n[0] + n[1]:]}}
    folder.mkdir(parents=True)
    (folder / "suite.json").write_text(json.dumps(meta))
    (folder / "outcomes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def served_counts(stub) -> dict:
    weights = Weights.from_proto(stub.GetWeights(scorer_pb2.GetWeightsRequest(), timeout=10))
    return weights.counts


def route_all(router, queries, models, want_version=None):
    """[K, Q] chosen model index per cost weight and [Q, M] scores, from the running router."""
    choices, scores = np.zeros((len(COST_WEIGHTS), len(queries)), dtype=int), np.zeros((len(queries), len(models)))
    for q, text in enumerate(queries):
        for k, weight in enumerate(COST_WEIGHTS):
            reply = router.Route(router_pb2.RouteRequest(query=text, cost_weight=weight, quality_margin=0.0),
                                 timeout=10)
            assert not reply.degraded, reply.degraded_reason
            if want_version:
                assert reply.weights_version == want_version
            choices[k, q] = models.index(reply.model)
            if k == 0:
                got = {s.model: s.score for s in reply.scores}
                scores[q] = [got[m] for m in models]
    return choices, scores


def wait_for_version(router, query, version, seconds=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if router.Route(router_pb2.RouteRequest(query=query), timeout=10).weights_version == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"the router did not switch to weights {version}")


def test_replayed_feedback_equals_fit_and_routes_the_same(stack, tmp_path):
    folder = synthetic_suite(tmp_path / "suite")
    fitted = tmp_path / "fit.json"
    out = tagrouter("fit", "--suite", str(folder), "--no-tune", "--out", str(fitted))
    assert out.returncode == 0, out.stderr
    fit_weights = Weights.load(fitted)
    scorer_address = stack["scorer"].address

    out = tagrouter("replay", "--suite", str(folder), "--split", "train", "--scorer", scorer_address, "--load-pool",
                    "--params-from", str(fitted), "--concurrency", "4")
    assert out.returncode == 0, out.stderr
    assert "180 counted, 0 already counted" in out.stdout, out.stdout
    with grpc.insecure_channel(scorer_address) as channel, grpc.insecure_channel(stack["router"].address) as rch:
        scorer = scorer_pb2_grpc.ScorerServiceStub(channel)
        router = router_pb2_grpc.RouterServiceStub(rch)
        replayed = served_counts(scorer)
        # exact up to the weights file's six decimals, every (tag, model) cell including `*`
        assert counts_equal(replayed, fit_weights.counts) == []
        assert len(replayed) == len(fit_weights.counts)

        # a rerun into the same loaded weights counts nothing twice
        again = tagrouter("replay", "--suite", str(folder), "--split", "train", "--scorer", scorer_address)
        assert again.returncode == 0, again.stderr
        assert "0 counted, 180 already counted" in again.stdout, again.stdout
        assert counts_equal(served_counts(scorer), fit_weights.counts) == []

        suite = load_suite(folder)
        test = suite.rows("test")
        queries = [suite.queries[r] for r in test]
        version = scorer.ListModels(scorer_pb2.ListModelsRequest(), timeout=5).weights_version
        wait_for_version(router, queries[0], version)
        time.sleep(1.5)  # the router's copy takes the last Feedback deltas at its next poll
        choices_replay, scores_replay = route_all(router, queries, suite.model_names, version)

        loaded = scorer.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=fit_weights.to_proto()), timeout=30)
        wait_for_version(router, queries[0], loaded.version)
        choices_fit, scores_fit = route_all(router, queries, suite.model_names, loaded.version)

    np.testing.assert_allclose(scores_replay, scores_fit, atol=1e-6)
    np.testing.assert_array_equal(choices_replay, choices_fit)
    # and so the test AUC of the two served routers (the same knob points) is the same number
    accept = metrics.accepted(suite.scores[test], suite.tie_margin)
    singles = metrics.single_models(suite.model_names, accept, suite.scores[test], suite.costs[test])
    lo, hi = singles.cost[singles.cheapest], singles.cost[singles.priciest]

    def auc(choices):
        pts = metrics.routed_points(choices, accept, suite.scores[test], suite.costs[test])
        return metrics.frontier_area(np.concatenate([pts[:, :2], singles.end_points()]), lo, hi)

    assert auc(choices_replay) == pytest.approx(auc(choices_fit), abs=1e-12)
    assert len(set(choices_fit.ravel().tolist())) > 1  # the knob points route to more than one model
