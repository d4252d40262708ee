"""The CLI as a user runs it: route --json, fit into a running scorer, route --embedded."""
import json
import subprocess
import sys

from services.scorer.keys import KEY_PATTERN
from tests.conftest import REPO_ROOT, SUITES, TAGROUTER, needs_shared, service_env

QUERY = "Write a Python function that reverses a linked list"


def tagrouter(*args, env=None, timeout=120):
    return subprocess.run([*TAGROUTER, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_route_json_prints_one_object(stack):
    out = tagrouter("route", QUERY, "--json", "--router", stack["router"].address)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {"model", "estimated_cost_usd", "tags", "scores"} <= set(doc)
    assert all({"name", "score"} <= set(t) for t in doc["tags"])
    assert all({"model", "score"} <= set(s) for s in doc["scores"])


def test_route_without_a_router_says_so(tmp_path):
    from tagrouter.stack.embedded_redis import free_port

    out = tagrouter("route", QUERY, "--router", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert out.returncode == 1
    assert "no router answers" in out.stderr and "Traceback" not in out.stderr


def test_route_embedded_runs_the_whole_path_in_process(redis_url, clean_redis):
    out = tagrouter("route", QUERY, "--json", "--embedded", env=service_env(redis_url))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model"]


@needs_shared()
def test_fit_loads_a_suite_into_the_scorer(stack, tmp_path):
    out = tagrouter("fit", "--suite", str(SUITES / "ae2-pair"), "--out", str(tmp_path / "w.json"),
                    "--scorer", stack["scorer"].address, "--no-tune")
    assert out.returncode == 0, out.stderr
    assert "loaded into the scorer" in out.stdout
    route = json.loads(tagrouter("route", QUERY, "--json", "--router", stack["router"].address).stdout)
    assert {s["model"] for s in route["scores"]} == {"gpt4_1106_preview", "claude-instant-1.2"}
    # put the starter pool back for the other tests of the module
    back = tagrouter("fit", "--suite", str(SUITES / "ae2-multi"), "--scorer", stack["scorer"].address, "--no-tune")
    assert back.returncode == 0, back.stderr


def test_fit_of_a_malformed_suite_names_the_problem_and_loads_nothing(stack, tmp_path, clean_redis):
    suite = tmp_path / "bad"
    suite.mkdir()
    (suite / "suite.json").write_text('{"name": "bad", "tie_margin": 0, "models": {"a": {}, "b": {}}, "splits": {}}')
    (suite / "outcomes.jsonl").write_text("")
    before = sorted(clean_redis.scan_iter(KEY_PATTERN))
    out = tagrouter("fit", "--suite", str(suite), "--scorer", stack["scorer"].address)
    assert out.returncode == 2
    assert "suite.json" in out.stderr and "models.a.input_usd_per_mtok" in out.stderr
    assert sorted(clean_redis.scan_iter(KEY_PATTERN)) == before


def test_serving_never_imports_torch():
    code = ("import sys, services.tagger.app, services.scorer.app, services.router.app, tagrouter.cli;"
            "from services.common.settings import TaggerSettings;"
            "services.tagger.app.load_tagger(TaggerSettings.from_env()).tag(['hello']);"
            "assert 'torch' not in sys.modules and 'optimum' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
