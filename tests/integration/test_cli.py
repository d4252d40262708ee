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


def test_route_embedded_refusals_and_a_stack_that_cannot_start_are_one_line(redis_url, clean_redis, tmp_path):
    """They were tracebacks: Route's INVALID_ARGUMENT raised through, a scorer that exits said nothing."""
    out = tagrouter("route", QUERY, "--embedded", "--max-cost-pct", "50", "--cost-weight", "1",
                    env=service_env(redis_url))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("tagrouter: error: INVALID_ARGUMENT: set one knob")
    bad = tmp_path / "weights.json"
    bad.write_text('{"version": ')
    fresh = {k: v for k, v in service_env(redis_url).items() if k != "REDIS_URL"}  # its own empty Redis reads the file
    out = tagrouter("route", QUERY, "--embedded", env={**fresh, "TAGROUTER_WEIGHTS_FILE": str(bad)})
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "did not start: scorer:" in out.stderr and f"{bad}: not valid JSON" in out.stderr


def small_suite(tmp_path, rows: list[tuple[str, str, float]], prices: dict[str, str]):
    import csv

    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "rows.csv"
    with src.open("w", newline="") as f:
        csv.writer(f).writerows([("prompt", "model", "score"), *rows])
    flags = [arg for model, price in prices.items() for arg in ("--price", f"{model}={price}")]
    out = tagrouter("suite", "import", "--format", "rows", str(src), "--out", str(tmp_path / "suite"), *flags)
    assert out.returncode == 0, out.stderr
    return tmp_path / "suite"


def test_fit_and_eval_say_what_a_suite_lacks_for_routing(tmp_path):
    prompts = [f"question {i}: explain topic {i}" for i in range(12)]
    same = small_suite(tmp_path / "same", [(p, m, float(i % 2)) for i, p in enumerate(prompts) for m in "ab"],
                       {"a": "1,1", "b": "1,1"})
    for command in (("fit", "--suite", str(same), "--out", str(tmp_path / "w.json")),
                    ("eval", "--suite", str(same), "--out", str(tmp_path / "r.json"), "--quiet")):
        out = tagrouter(*command)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert "every model costs the same" in out.stderr and "--no-tune" in out.stderr
    assert tagrouter("fit", "--suite", str(same), "--out", str(tmp_path / "w.json"), "--no-tune").returncode == 0
    tiny = small_suite(tmp_path / "tiny", [(p, m, 1.0) for p in prompts[:3] for m in "ab"], {"a": "1,2", "b": "0.1,0.2"})
    out = tagrouter("eval", "--suite", str(tiny), "--out", str(tmp_path / "r.json"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "needs at least 2" in out.stderr, out.stderr


def test_counts_and_durations_out_of_range_are_refused_by_the_flag():
    for args, flag in ((("replay", "--suite", "s", "--scorer", "127.0.0.1:1", "--retries", "-1"), "--retries"),
                       (("replay", "--suite", "s", "--scorer", "127.0.0.1:1", "--concurrency", "0"), "--concurrency"),
                       (("route", "hi", "--timeout", "0"), "--timeout"),
                       (("simulate", "--suite", "s", "--budget-pct", "30", "--max-seconds", "nan"), "--max-seconds")):
        out = tagrouter(*args, timeout=60)
        assert out.returncode == 2 and f"argument {flag}: must be" in out.stderr, out.stderr


def test_outputs_that_cannot_be_written_and_text_that_is_not_utf8_are_refused_by_the_flag(tmp_path):
    """They were tracebacks, some after the whole fit or eval had run."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for args, flag, says in (
            (("fit", "--suite", "s", "--out", str(a_file / "w.json")), "--out", "cannot write in"),
            (("fit", "--suite", "s", "--out", str(tmp_path)), "--out", "is a folder, not a file"),
            (("eval", "--suite", "s", "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "c.xyz")), "--plot",
             "must end in .png"),
            (("suite", "import", "--format", "rows", "x.csv", "--out", str(a_file)), "--out", "is a file, not a folder")):
        out = tagrouter(*args, timeout=60)
        assert out.returncode == 2 and f"argument {flag}: " in out.stderr and says in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    out = subprocess.run([*TAGROUTER, "tag", b"abc\xff"], cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert out.returncode == 2 and b"argument text: not UTF-8 text" in out.stderr, out.stderr
