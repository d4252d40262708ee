"""docs/QUICKSTART.md's four commands, for real: import judged outcomes, fit, serve, route."""
import csv
import json

import grpc

from tagrouter.cli import main
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tests.conftest import SUITES, needs_shared, running_stack, wipe_tagrouter_keys


@needs_shared()
def test_quickstart_from_judged_outcomes_to_a_routing_router(tmp_path, redis_url, capsys):
    rows = [json.loads(line) for line in (SUITES / "ae2-pair" / "outcomes.jsonl").open()][:400]
    judged = tmp_path / "judged.csv"
    with judged.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "model", "score", "output_tokens"])
        w.writerows((r["query"], r["model"], r["score"], r["output_tokens"]) for r in rows)
    suite, weights = tmp_path / "my-suite", tmp_path / "my-weights.json"
    assert main(["suite", "import", "--format", "rows", str(judged), "--out", str(suite), "--price",
                 "gpt4_1106_preview=10,30", "--price", "claude-instant-1.2=0.8,2.4", "--tie-margin", "0.1"]) == 0
    assert main(["fit", "--suite", str(suite), "--out", str(weights), "--no-topics", "--quiet"]) == 0
    assert "recommended operating point" in capsys.readouterr().out
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url, TAGROUTER_WEIGHTS_FILE=str(weights)) as procs:
        with grpc.insecure_channel(procs["router"].address) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            reply = stub.Route(router_pb2.RouteRequest(query="Summarise this contract clause", max_cost_pct=50),
                               timeout=10)
        assert reply.model in ("gpt4_1106_preview", "claude-instant-1.2") and reply.knob_source == "max_cost_pct"
        assert reply.weights_version.startswith(json.loads(weights.read_text())["version"])
        assert main(["route", "Summarise this contract clause", "--max-cost-pct", "50", "--router",
                     procs["router"].address]) == 0
        assert "knob:   cost_weight" in capsys.readouterr().out
