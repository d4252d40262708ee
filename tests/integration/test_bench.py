"""`tagrouter bench` works end to end, for a few seconds: BENCH.json has every figure the issue asks for.

No timing assertions: the figures depend on the machine and its load; only their presence and
sanity (positive, ordered percentiles) are checked.
"""
import json
import os

from tagrouter.bench import peer
from tagrouter.offline.paths import shared_dir
from tests.conftest import REPO_ROOT
from tests.integration.test_cli import tagrouter


def test_bench_writes_every_figure(tmp_path):
    out = tmp_path / "BENCH.json"
    run = tagrouter("bench", "--out", str(out), "--scale", "0.05", "--rounds", "1", "--phase-seconds", "3",
                    "--quiet", timeout=240)
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["versions"]["onnxruntime"] and doc["versions"]["grpcio"]
    for length in ("short", "long"):
        result = doc[length]
        assert {"p50_ms", "p99_ms", "batch_qps"} <= set(result["encoder"])
        c1 = result["route"]["c1"]
        assert 0 < c1["p50_ms"] <= c1["p90_ms"] <= c1["p99_ms"]
        for c in ("c8", "c32"):
            assert {"qps", "p99_ms"} <= set(result["route"][c]) and result["route"][c]["errors"] == 0
        assert result["tag"]["c1"]["p50_ms"] > 0 and result["score"]["c1"]["p50_ms"] > 0
        assert set(result["ratios"]) == {"route_p50_over_encoder_p50", "route_p99_over_encoder_p50",
                                         "route_c32_qps_over_encoder_batch_qps"}
        assert all(v is not None and v >= 0 for v in result["ratios"].values())
    assert "misses" in doc["tag_cache"] and doc["short"]["route"]["c1_cache_hit"]["n"] > 0
    # where a c1 Route's time goes, from the router's and tagger's /metrics
    assert set(doc["short"]["route"]["c1"]["breakdown_ms"]) == {
        "tokenise", "encode", "select_tags", "tagger_handler_rest", "router_to_tagger_hop", "score", "decide",
        "router_handler_rest", "client_to_router_hop"}
    assert doc["short"]["route"]["c1"]["breakdown_ms"]["encode"] > 0
    assert set(doc["targets"]) == {"short.route_p50_over_encoder_p50", "short.route_p99_over_encoder_p50",
                                   "short.route_c32_qps_over_encoder_batch_qps", "long.route_p50_over_encoder_p50"}


def test_ghz_scenarios_run_through_the_bench_against_a_running_router(stack):
    scenarios = [str(REPO_ROOT / "bench" / "ghz" / name)
                 for name in ("route-c8-short.json", "route-c1-cache-hit.json", "route-c32-short.protoset.toml")]
    # Fewer requests than the files say, so the test takes seconds: same calls and data.
    run = tagrouter("bench", "--ghz-config", *scenarios, "--router", stack["router"].address, "--ghz-total", "64",
                    timeout=120)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["ghz_scenarios"]
    assert [r["status_distribution"] for r in results] == [{"OK": 64}] * 3


def test_the_peer_comparison_says_it_is_skipped_without_its_environment(stack, tmp_path):
    out = tmp_path / "BENCH.json"
    run = tagrouter("bench", "--router", stack["router"].address, "--lengths", "--peer", "1", "--out", str(out),
                    env=dict(os.environ, PEER_HOME=str(tmp_path / "no-peer")), timeout=120)
    assert run.returncode == 0, run.stderr
    skipped = json.loads(out.read_text())["peer"]["skipped"]
    assert "skipped" in run.stderr
    if (shared_dir() / peer.SCRIPT).exists():  # the script is there: what is missing is its environment
        assert "no-peer" in skipped and "setup.sh" in skipped, skipped
    else:  # a clone with no ../shared beside it
        assert "route_vs_peer.py" in skipped and "../shared" in skipped, skipped


def test_bench_refuses_a_non_loopback_target():
    run = tagrouter("bench", "--router", "10.1.2.3:50051", "--lengths", "short", "--scale", "0.05")
    assert run.returncode != 0 and "loopback" in run.stderr


def test_bench_says_so_when_the_prompts_folder_it_was_given_is_absent(tmp_path):
    run = tagrouter("bench", "--shared", str(tmp_path / "absent"), "--lengths", "short", "--scale", "0.05")
    assert run.returncode != 0 and "absent" in run.stderr and "TAGROUTER_SHARED_DIR" in run.stderr
    assert "Traceback" not in run.stderr
