"""The OpenAI-compatible gateway with the official `openai` client: real tagger, scorer, router and
gateway processes (the launcher's), a real Redis; only the upstream LLM is the local fake."""
from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request

import httpx
import openai
import pytest

from tagrouter.stack import LocalStack
from tests.conftest import service_env, wipe_tagrouter_keys
from tests.fake_upstream import FakeUpstream

POOL = ("gpt4_1106_preview", "Mixtral-8x7B-Instruct-v0.1_concise", "claude-instant-1.2", "gemma-7b-it")
PRICES = {"gpt4_1106_preview": (10.0, 30.0)}  # the others have none: tokens counted, no cost
UPSTREAM_TIMEOUT_S = 2.0
CHUNK_DELAY_S = 0.3  # between the fake's SSE chunks: long enough to see them arrive one by one


def upstream_name(model: str) -> str:
    return f"up-{model}"


@pytest.fixture(scope="module")
def gateway(redis_url, tmp_path_factory):
    """(base_url, fake upstream, metrics URL) of a gateway in front of the whole local stack."""
    wipe_tagrouter_keys(redis_url)
    with FakeUpstream(chunk_delay_s=CHUNK_DELAY_S) as upstream:
        models = {m: {"base_url": upstream.base_url, "model": upstream_name(m)} for m in POOL}
        for m, (price_in, price_out) in PRICES.items():
            models[m].update(input_usd_per_mtok=price_in, output_usd_per_mtok=price_out)
        path = tmp_path_factory.mktemp("gateway") / "upstreams.json"
        path.write_text(json.dumps({"models": models, "aliases": ["auto", "router"]}))
        env = service_env(redis_url, TAGROUTER_UPSTREAM_TIMEOUT_SECONDS=str(UPSTREAM_TIMEOUT_S))
        env.pop("TAGROUTER_METRICS_PORT")
        stack = LocalStack(env=env, upstreams=path, metrics=True, quiet=bool(os.environ.get("TAGROUTER_TEST_QUIET")))
        with contextlib.closing(stack.start()):
            yield stack.gateway, upstream, stack.metrics_urls["gateway"]


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway[0], api_key="unused", max_retries=0, timeout=30)


def served_by(text: str) -> str:
    assert text.startswith("served by up-"), text
    return text.removeprefix("served by up-")


def test_auto_is_routed_and_answered_by_the_routed_model(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Write a haiku about the sea"}])
    answer = raw.parse()
    model = raw.headers["x-tagrouter-model"]
    assert model in POOL
    assert served_by(answer.choices[0].message.content) == model  # the body reached that model's upstream
    assert float(raw.headers["x-tagrouter-estimated-cost-usd"]) > 0
    assert raw.headers["x-tagrouter-degraded"] == "false"
    assert answer.usage.total_tokens > 0


def test_a_pool_model_is_forwarded_as_it_is(client, gateway):
    upstream = gateway[1]
    raw = client.chat.completions.with_raw_response.create(
        model="claude-instant-1.2", messages=[{"role": "user", "content": "hi"}], temperature=0.25)
    assert served_by(raw.parse().choices[0].message.content) == "claude-instant-1.2"
    assert raw.headers["x-tagrouter-model"] == "claude-instant-1.2"
    assert "x-tagrouter-estimated-cost-usd" not in raw.headers  # not routed: no estimate
    path, _, body = upstream.requests[-1]
    assert (path, body["model"], body["temperature"]) == ("/v1/chat/completions", "up-claude-instant-1.2", 0.25)


def test_completions_endpoint(client):
    raw = client.completions.with_raw_response.create(model="router", prompt="What is 2+2?")
    assert served_by(raw.parse().choices[0].text) == raw.headers["x-tagrouter-model"]


def test_streaming_arrives_chunk_by_chunk(client):
    arrivals, pieces = [], []
    with client.chat.completions.with_streaming_response.create(
            model="auto", stream=True, messages=[{"role": "user", "content": "Prove that there are infinitely many primes"}]
    ) as response:
        model = response.headers["x-tagrouter-model"]
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
                pieces.append(chunk.choices[0].delta.content)
    assert served_by("".join(pieces)) == model
    assert len(arrivals) == 3
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) > CHUNK_DELAY_S / 2, gaps  # relayed as sent, not gathered first


def test_models_lists_the_aliases_and_the_pool(client):
    assert [m.id for m in client.models.list()] == ["auto", "router", *POOL]


def test_an_upstream_500_is_an_openai_error(client, gateway):
    gateway[1].fail[upstream_name("gemma-7b-it")] = 500
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="gemma-7b-it", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    assert err.value.body["code"] == "upstream_500" and "gemma-7b-it" in err.value.body["message"]
    with pytest.raises(openai.InternalServerError):  # streaming too: the status is known before any chunk
        client.chat.completions.create(model="gemma-7b-it", stream=True, messages=[{"role": "user", "content": "hi"}])


def test_an_upstream_timeout_is_an_openai_error(client, gateway):
    gateway[1].delay[upstream_name("Mixtral-8x7B-Instruct-v0.1_concise")] = UPSTREAM_TIMEOUT_S * 3
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="Mixtral-8x7B-Instruct-v0.1_concise",
                                       messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < UPSTREAM_TIMEOUT_S * 2.5
    assert err.value.status_code == 504 and err.value.body["code"] == "upstream_timeout"


@pytest.mark.parametrize("body, param", [
    ({"model": "auto"}, "messages"),
    ({"model": "auto", "messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
    ({"model": "auto", "messages": [{"role": "user", "content": "hi"}], "user": 7}, "user"),
])
def test_bad_requests_get_a_400_naming_the_field(gateway, body, param):
    reply = httpx.post(f"{gateway[0]}/chat/completions", json=body, timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param and reply.json()["error"]["type"] == "invalid_request_error"


def test_not_json_and_unknown_models(gateway):
    reply = httpx.post(f"{gateway[0]}/chat/completions", content=b"\xff{", timeout=10)
    assert reply.status_code == 400 and "not JSON" in reply.json()["error"]["message"]
    reply = httpx.post(f"{gateway[0]}/chat/completions", json={"model": "gpt-5", "messages": [{"role": "user",
                                                                                             "content": "hi"}]})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"


def test_made_up_model_names_are_one_metric_series_and_echoed_short(gateway):
    """Each unknown name once became a series of its own (1 MB names grew /metrics by megabytes)."""
    names = [f"made-up-{i}-" + "x" * 5000 for i in range(3)]
    for name in names:
        reply = httpx.post(f"{gateway[0]}/chat/completions", timeout=10,
                           json={"model": name, "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 404 and reply.json()["error"]["param"] == "model"
        assert len(reply.json()["error"]["message"]) < 1000
    text = urllib.request.urlopen(gateway[2], timeout=5).read().decode()
    assert "made-up-" not in text
    assert any(line.startswith("tagrouter_gateway_requests_total{") and 'model="unknown"' in line
               and 'status="404"' in line for line in text.splitlines())


@pytest.mark.parametrize("raw, param", [
    (b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800 hi"}]}', "messages[0].content"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "x": "\\udc00"}', None),  # no such param
])
def test_a_lone_surrogate_is_a_400_naming_where(gateway, raw, param):
    reply = httpx.post(f"{gateway[0]}/chat/completions", content=raw, timeout=10,
                       headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["message"].startswith(f"{param or 'x'} holds a lone UTF-16 surrogate")
    # the connection and the gateway are fine afterwards
    assert httpx.get(f"{gateway[0]}/models", timeout=10).status_code == 200


def test_unknown_paths_and_methods_get_openai_errors(gateway):
    for method, path, status in (("GET", "/chat/completions", 405), ("POST", "/embeddings", 404)):
        reply = httpx.request(method, f"{gateway[0]}{path}", timeout=10)
        assert reply.status_code == status and reply.headers["content-type"] == "application/json"
        assert reply.json()["error"]["type"] == "invalid_request_error" and reply.json()["error"]["message"]


def test_blank_padding_does_not_hide_the_question(client):
    """The router reads the first 100,000 characters: 100,000 spaces before the text once made it 'empty'."""
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": " " * 100_000 + "What is 2+2?"}],
        extra_headers={"x-tagrouter-cost-weight": "0"})  # the best model: an earlier test fails another's upstream
    assert raw.headers["x-tagrouter-degraded"] == "false"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "\u200b" * 10 + "\u200c"}])
    assert err.value.body["param"] == "messages"


def test_a_session_header_keeps_the_conversation_on_its_model(client):
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Prove that there are infinitely many primes"}],
        extra_headers={"x-session-id": "gateway-session"})
    assert first.headers["x-tagrouter-session-kept"] == "false"
    later = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-session-id": "gateway-session"})
    assert later.headers["x-tagrouter-session-kept"] in ("true", "false")
    if later.headers["x-tagrouter-session-kept"] == "true":
        assert later.headers["x-tagrouter-model"] == first.headers["x-tagrouter-model"]


def test_a_long_system_prompt_is_in_the_cost_estimate(client):
    """The router routes on the last message and 2,000 characters before it, but the model bills the
    whole prompt: the gateway tells Route its length (prompt_chars), and the estimate grows with it."""
    def estimate(*messages):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[*messages, {"role": "user", "content": "Review this diff for bugs"}],
            extra_headers={"x-tagrouter-cost-weight": "0"})  # the best model, the one with a price, for both
        assert raw.headers["x-tagrouter-model"] == "gpt4_1106_preview"
        return float(raw.headers["x-tagrouter-estimated-cost-usd"])

    system = {"role": "system", "content": "You are a careful reviewer of pull requests. " * 600}  # ~27,000 chars
    # about 5,000 more input tokens at 10 USD per million; routed on the query alone it would be ~500
    assert estimate(system) - estimate() > 0.04


def test_actual_cost_is_recorded_per_model(client, gateway):
    client.chat.completions.create(model="gpt4_1106_preview", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="gpt4_1106_preview", stream=True,
                                   messages=[{"role": "user", "content": "hi"}]).close()
    text = urllib.request.urlopen(gateway[2], timeout=5).read().decode()
    cost = [line for line in text.splitlines()
            if line.startswith('tagrouter_gateway_actual_cost_usd_total{model="gpt4_1106_preview"}')]
    assert cost and float(cost[0].split()[-1]) > 0
    assert 'tagrouter_gateway_tokens_total{kind="completion",model="gpt4_1106_preview"}' in text


def test_serve_gateway_refuses_a_missing_upstreams_file(tmp_path):
    import subprocess

    from tests.conftest import REPO_ROOT, TAGROUTER

    done = subprocess.run([*TAGROUTER, "serve", "gateway", "--port", "0", "--router", "127.0.0.1:1",
                           "--upstreams", str(tmp_path / "none.yaml")], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    assert done.returncode == 2 and "TAGROUTER_UPSTREAMS" in done.stderr and "no such file" in done.stderr


def test_idle_connections_take_no_request_slot(tmp_path):
    """uvicorn's limit_concurrency counted connections: with a limit of 2, one silent socket made every
    answer a 503, /healthz included."""
    import socket
    import subprocess
    import sys

    from tagrouter.stack.embedded_redis import free_port
    from tests.conftest import REPO_ROOT

    upstreams = tmp_path / "upstreams.json"
    upstreams.write_text(json.dumps({"models": {"m": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}}))
    port = free_port()
    env = {**os.environ, "ROUTER_ADDR": "127.0.0.1:1", "TAGROUTER_UPSTREAMS": str(upstreams),
           "TAGROUTER_METRICS_PORT": "0", "TAGROUTER_MAX_CONCURRENT_RPCS": "2", "TAGROUTER_PORT": str(port)}
    gateway = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env, cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base, idle = f"http://127.0.0.1:{port}", []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert gateway.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        time.sleep(0.5)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
        gateway.terminate()
        gateway.wait(15)
