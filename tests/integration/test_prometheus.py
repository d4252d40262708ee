"""The dashboard's queries and the alert rules against a real Prometheus scraping the running stack.

Prometheus and promtool come from Debian's package, unpacked into build/tools/bin by
`make prometheus-tools` (a prerequisite of `make test`); where they could not be installed,
these tests skip and say so.
"""
import json
import subprocess
import time
import urllib.parse
import urllib.request

import grpc
import pytest

from tagrouter.dev import observability
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack import LocalStack
from tagrouter.stack.embedded_redis import free_port
from tests.conftest import REPO_ROOT, service_env

TOOLS = REPO_ROOT / "build" / "tools" / "bin"
PROMETHEUS, PROMTOOL = TOOLS / "prometheus", TOOLS / "promtool"
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS.exists() and PROMTOOL.exists()),
    reason=f"{PROMETHEUS} is missing: `make prometheus-tools` could not install Debian's prometheus package here")
QUERIES = ["Write a Python function that reverses a linked list", "What is the capital of France?",
           "Prove that the square root of two is irrational", "Summarise the plot of Hamlet in two sentences"]


@needs_prometheus
def test_promtool_accepts_the_rules():
    for path in observability.RULES_FILES:
        done = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "SUCCESS: 5 rules found" in done.stdout, done.stdout + done.stderr


def _get(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - loopback only
        return json.load(reply)


def _query(api: str, expr: str) -> dict:
    return _get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def _traffic(stack) -> None:
    """Routes (repeated, so the tag cache hits), a bad Route, a Feedback, then Routes with the tagger stopped."""
    with grpc.insecure_channel(stack.router) as channel:
        route = router_pb2_grpc.RouterServiceStub(channel).Route
        for _ in range(3):
            for query in QUERIES:
                route(router_pb2.RouteRequest(query=query), timeout=10)
        with pytest.raises(grpc.RpcError):
            route(router_pb2.RouteRequest(query=""), timeout=10)
        with grpc.insecure_channel(stack.scorer) as scorer:
            scorer_pb2_grpc.ScorerServiceStub(scorer).Feedback(scorer_pb2.FeedbackRequest(
                query=QUERIES[0], model="gpt4_1106_preview", outcome=scorer_pb2.OUTCOME_WIN), timeout=10)
        time.sleep(2.5)  # a scrape of the healthy stack first
        stack.processes["tagger"].stop()
        for query in QUERIES:
            assert route(router_pb2.RouteRequest(query=query), timeout=10).degraded


@needs_prometheus
def test_every_panel_query_and_alert_runs_on_a_real_prometheus(redis_url, clean_redis, tmp_path):
    with LocalStack(env=service_env(redis_url), metrics=True, log_dir=tmp_path / "logs") as stack:
        targets = [url.removeprefix("http://").removesuffix("/metrics") for url in stack.metrics_urls.values()]
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(observability.RULES_FILES[0])],
            "scrape_configs": [{"job_name": "tagrouter", "static_configs": [{"targets": targets}]}]}))
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        log = open(tmp_path / "prometheus.log", "w")
        prometheus = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                       f"--storage.tsdb.path={tmp_path / 'data'}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:  # until all three targets have been scraped once
                try:
                    up = _query(api, "up")["data"]["result"]
                    if len(up) == 3 and all(r["value"][1] == "1" for r in up):
                        break
                except OSError:
                    pass
                assert prometheus.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.2)
            _traffic(stack)
            time.sleep(3)  # scrapes after the degraded Routes
            queries = [(p.title, q) for p in observability.PANELS for q in p.queries]
            queries += [(a.name, a.query) for a in observability.ALERTS]
            queries += [(a.name + " (alert)", observability.Query(f"{a.query.expr} {a.condition}", has_data=False))
                        for a in observability.ALERTS]
            empty = []
            for title, query in queries:
                answer = _query(api, query.expr)
                assert answer["status"] == "success", (title, query.expr, answer)
                if query.has_data and not answer["data"]["result"]:
                    empty.append(f"{title}: {query.expr}")
            assert not empty, "no data for:\n" + "\n".join(empty)
            rules = _get(f"{api}/api/v1/rules")["data"]["groups"][0]["rules"]
            assert {r["name"] for r in rules} == {a.name for a in observability.ALERTS}
            assert all(r["health"] == "ok" for r in rules), rules
        finally:
            prometheus.terminate()
            prometheus.wait(15)
            log.close()
