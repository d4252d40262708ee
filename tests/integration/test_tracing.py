"""Traces of real Routes: three service processes export over OTLP/gRPC to a real receiver on loopback."""
import contextlib
import secrets
import subprocess
import sys

import grpc
import pytest

from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.stack import LocalStack
from tagrouter.stack.otlp import OtlpReceiver
from tests.conftest import service_env

QUERY = "Write a Python function that reverses a linked list"
ROUTE = "tagrouter.router.v1.RouterService/Route"
TAG = "tagrouter.tagger.v1.TaggerService/Tag"
SCORE = "tagrouter.scorer.v1.ScorerService/Score"


@contextlib.contextmanager
def traced_stack(redis_url, tmp_path, **extra):
    with OtlpReceiver() as receiver:
        env = service_env(redis_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50",
                          TAGROUTER_LOG_LEVEL="DEBUG", **extra)
        with LocalStack(env=env, log_dir=tmp_path) as stack:
            yield stack, receiver


def route(address, query=QUERY, metadata=None):
    with grpc.insecure_channel(address) as channel:
        return router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query=query), timeout=10,
                                                                 metadata=metadata)


def one_trace(receiver, trace_id, names):
    spans = receiver.wait_for(lambda got: names <= {s.name for s in got if s.trace_id == trace_id})
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_one_route_is_one_trace_across_router_tagger_and_scorer(redis_url, clean_redis, tmp_path):
    # Scoring by a Score call (as when the copy is not current): the scorer is in the trace too.
    with traced_stack(redis_url, tmp_path, TAGROUTER_SCORE_IN_ROUTER="false") as (stack, receiver):
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        reply = route(stack.router, f"{QUERY} {trace_id}", metadata=[("traceparent", f"00-{trace_id}-{caller_span}-01")])
        assert not reply.degraded
        spans = one_trace(receiver, trace_id, {ROUTE, "route.tag", "route.score", "route.decide", TAG, SCORE,
                                               "tagger.queue", "tagger.batch", "tagger.encode", "tagger.select_tags"})
    by_id = {s.span_id: s for s in spans.values()}
    assert spans[ROUTE].parent_id == caller_span  # the caller's traceparent is the parent
    assert spans[ROUTE].service == "tagrouter-router"
    for phase in ("route.tag", "route.score", "route.decide"):
        assert spans[phase].parent_id == spans[ROUTE].span_id
    assert spans[TAG].parent_id == spans["route.tag"].span_id and spans[TAG].service == "tagrouter-tagger"
    assert spans[SCORE].parent_id == spans["route.score"].span_id and spans[SCORE].service == "tagrouter-scorer"
    assert spans["tagger.queue"].parent_id == spans[TAG].span_id
    assert spans["tagger.batch"].parent_id == spans[TAG].span_id
    assert by_id[spans["tagger.encode"].parent_id].name == "tagger.batch"
    attributes = spans[ROUTE].attributes
    assert attributes["tagrouter.model"] == reply.model
    assert attributes["tagrouter.runner_up"] == reply.explanation.runner_up
    assert attributes["tagrouter.degraded"] is False
    assert attributes["tagrouter.input_tokens"] == reply.input_tokens
    assert spans["route.score"].attributes["tagrouter.score_source"] == "score_call"
    assert spans[TAG].attributes["tagrouter.cache_misses"] == 1
    assert spans["tagger.batch"].attributes["tagrouter.batch_size"] == 1
    assert spans[TAG].attributes["tagrouter.input_tokens"] == reply.input_tokens


def test_a_degraded_route_shows_the_degraded_span_and_reason(redis_url, clean_redis, tmp_path):
    with traced_stack(redis_url, tmp_path) as (stack, receiver):
        trace_id = secrets.token_hex(16)
        assert not route(stack.router).degraded
        stack.processes["tagger"].stop()
        reply = route(stack.router, metadata=[("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")])
        assert reply.degraded and "tagger unavailable" in reply.degraded_reason
        spans = one_trace(receiver, trace_id, {ROUTE, "route.tag", "route.score", "route.degraded"})
    assert spans["route.degraded"].parent_id == spans[ROUTE].span_id
    assert spans["route.degraded"].attributes["tagrouter.degraded_reason"] == reply.degraded_reason
    assert spans["route.tag"].status_code == 2 and "tagger unavailable" in spans["route.tag"].status_message
    assert spans[ROUTE].attributes["tagrouter.degraded"] is True
    assert spans[ROUTE].attributes["tagrouter.degraded_reason"] == reply.degraded_reason
    assert spans["route.score"].attributes["tagrouter.score_source"] == "copy"
    # The router's log line of that Route carries its trace and span ids.
    lines = [line for line in (tmp_path / "router.log").read_text().splitlines() if "Route degraded" in line]
    assert any(f"trace_id={trace_id} span_id={spans['route.degraded'].span_id}" in line for line in lines), lines


def test_tracing_off_installs_nothing(redis_url, clean_redis, tmp_path):
    with OtlpReceiver() as receiver:  # listening, but no service is told of it
        env = service_env(redis_url)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        with LocalStack(env=env, log_dir=tmp_path) as stack:
            assert not route(stack.router).degraded
        assert receiver.received == 0
    assert "tracing on" not in (tmp_path / "router.log").read_text()


@pytest.mark.parametrize("extra, message", [
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
])
def test_bad_tracing_settings_stop_the_service_naming_the_variable(redis_url, extra, message):
    env = service_env(redis_url, **{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", **extra})
    done = subprocess.run([sys.executable, "-m", "services.scorer", "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_an_http_callers_traceparent_through_the_gateway_is_the_routes_parent(redis_url, clean_redis, tmp_path):
    """The gateway passes an HTTP caller's W3C trace context on to Route."""
    import json
    import urllib.request

    from tagrouter.stack.fake_upstream import FakeUpstream

    with FakeUpstream() as upstream, OtlpReceiver() as receiver:
        models = {m: {"base_url": upstream.base_url, "model": m} for m in ("gpt4_1106_preview", "claude-2")}
        path = tmp_path / "upstreams.json"
        path.write_text(json.dumps({"models": models}))
        env = service_env(redis_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        with LocalStack(env=env, log_dir=tmp_path, upstreams=path) as stack:
            trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
            body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": f"{QUERY} {trace_id}"}]})
            request = urllib.request.Request(f"{stack.gateway}/chat/completions", data=body.encode(), method="POST",
                                             headers={"content-type": "application/json",
                                                      "traceparent": f"00-{trace_id}-{caller_span}-01"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200 and answer.headers["x-tagrouter-degraded"] == "false"
            spans = one_trace(receiver, trace_id, {ROUTE})
    assert spans[ROUTE].parent_id == caller_span and spans[ROUTE].service == "tagrouter-router"
