"""The numbers of the evaluation are what the services compute: same weights, same scores."""
import json

import grpc
import numpy as np
import pytest

from tagrouter.core.scoring import ScoringParams
from tagrouter.core.weights import Weights
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tests.conftest import needs_shared
from tests.integration.test_cli import tagrouter
from tests.integration.test_eval import POOL, small_suite


@needs_shared()
def test_scorer_scores_what_the_evaluation_scores(stack, tmp_path):
    from services.common.settings import DEFAULT_WEIGHTS_FILE, TaggerSettings
    from services.tagger.app import load_tagger
    from tagrouter.offline.calibration import score_with_weights

    suite = small_suite(tmp_path / "s", POOL, n=(80, 10, 10))
    assert tagrouter("fit", "--suite", str(suite), "--out", str(tmp_path / "w.json"), "--no-tune").returncode == 0
    weights = Weights.load(tmp_path / "w.json")
    # non-default rules, so the test covers them: loss penalty, evidence weights, absolute cost scale,
    # level weights (one level halved, one dropped)
    weights = Weights(weights.models, ScoringParams(tie_reward=0.5, loss_reward=-1.0, prior_strength=3.0,
                                                    tag_evidence=30.0, cost_scale_usd=0.01,
                                                    level_weight_domain=0.5, level_weight_attr=0.0), weights.counts)
    queries = [json.loads(line)["query"] for line in (suite / "outcomes.jsonl").read_text().splitlines()[::15]][:6]
    tagger = load_tagger(TaggerSettings.from_env())
    tagged = tagger.tag_many(queries)
    prices_in = np.array([m.input_usd_per_mtok for m in weights.models])
    prices_out = np.array([m.output_usd_per_mtok for m in weights.models])
    expected, _ = score_with_weights(weights, tagged, prices_in, prices_out)
    with grpc.insecure_channel(stack["scorer"].address) as channel:
        stub = scorer_pb2_grpc.ScorerServiceStub(channel)
        stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=weights.to_proto()), timeout=30)
        for q, t in enumerate(tagged):
            reply = stub.Score(scorer_pb2.ScoreRequest(
                tags=[scorer_pb2.WeightedTag(name=n, weight=s) for n, _, s in t.tags]), timeout=5)
            got = {s.model: s.score for s in reply.scores}
            assert reply.cost_scale_usd == pytest.approx(0.01)
            for m, name in enumerate(weights.model_names):
                assert got[name] == pytest.approx(expected[q, m], abs=1e-5), (queries[q], name)
        # put the starter weights back for the other tests of the module
        stub.LoadWeights(scorer_pb2.LoadWeightsRequest(weights=Weights.load(DEFAULT_WEIGHTS_FILE).to_proto()),
                         timeout=30)
