"""Admin token on state-changing RPCs, mutual TLS, and secrets kept out of logs."""
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest

from services.common.security import READ_ONLY_METHODS, STATE_CHANGING_METHODS, bearer
from services.common.settings import DEFAULT_WEIGHTS_FILE
from tagrouter.core.weights import Weights
from tagrouter.router.v1 import router_pb2, router_pb2_grpc
from tagrouter.scorer.v1 import scorer_pb2, scorer_pb2_grpc
from tagrouter.stack.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import Process, running_stack, service_env, wait_serving


def test_every_rpc_is_classified_as_state_changing_or_read_only():
    from tagrouter.router.v1 import router_pb2 as r
    from tagrouter.scorer.v1 import scorer_pb2 as s
    from tagrouter.tagger.v1 import tagger_pb2 as t

    methods = {f"/{svc.full_name}/{m.name}" for mod in (r, s, t) for svc in mod.DESCRIPTOR.services_by_name.values()
               for m in svc.methods}
    unclassified = methods - STATE_CHANGING_METHODS - READ_ONLY_METHODS
    assert not unclassified


def test_state_changing_rpc_needs_the_token(redis_url, clean_redis):
    scorer = Process("scorer", service_env(redis_url, TAGROUTER_ADMIN_TOKEN="s3cret-token"))
    try:
        wait_serving(scorer.address)
        request = scorer_pb2.LoadWeightsRequest(weights=Weights.load(DEFAULT_WEIGHTS_FILE).to_proto())
        with grpc.insecure_channel(scorer.address) as channel:
            stub = scorer_pb2_grpc.ScorerServiceStub(channel)
            for metadata in (None, bearer("wrong"), (("authorization", "s3cret-token"),)):
                with pytest.raises(grpc.RpcError) as err:
                    stub.LoadWeights(request, timeout=10, metadata=metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert stub.LoadWeights(request, timeout=10, metadata=bearer("s3cret-token")).version
            assert stub.Score(scorer_pb2.ScoreRequest(), timeout=5).scores  # reads need no token
    finally:
        scorer.stop()
        assert "s3cret-token" not in scorer.output()


def make_pki(folder):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=tagrouter-test-ca")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {n: folder / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def test_mutual_tls_end_to_end(redis_url, clean_redis, tmp_path):
    pki = make_pki(tmp_path)
    tls = dict(TAGROUTER_TLS_CERT_FILE=str(pki["server.pem"]), TAGROUTER_TLS_KEY_FILE=str(pki["server.key"]),
               TAGROUTER_TLS_CLIENT_CA_FILE=str(pki["ca.pem"]), TAGROUTER_TLS_CA_FILE=str(pki["ca.pem"]))
    with running_stack(redis_url, ready_check=False, **tls) as procs:
        address = procs["router"].address
        client = grpc.ssl_channel_credentials(pki["ca.pem"].read_bytes(), pki["client.key"].read_bytes(),
                                              pki["client.pem"].read_bytes())
        with grpc.secure_channel(address, client) as channel:
            stub = router_pb2_grpc.RouterServiceStub(channel)
            reply, deadline = None, time.monotonic() + 30
            while time.monotonic() < deadline:  # until the processes are up and connected over TLS
                try:
                    reply = stub.Route(router_pb2.RouteRequest(query="Translate 'thank you' into French"), timeout=5)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE
                if reply is not None and not reply.degraded:
                    break
                time.sleep(0.1)
            assert reply is not None and not reply.degraded  # router -> tagger/scorer over mTLS too
        no_client_cert = grpc.ssl_channel_credentials(pki["ca.pem"].read_bytes())
        with grpc.secure_channel(address, no_client_cert) as channel:
            with pytest.raises(grpc.RpcError) as err:
                router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query="hi"), timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(address) as channel:
            with pytest.raises(grpc.RpcError):
                router_pb2_grpc.RouterServiceStub(channel).Route(router_pb2.RouteRequest(query="hi"), timeout=3)
        _gateway_reaches_a_router_that_asks_for_client_certificates(address, pki, tmp_path)


def _gateway_reaches_a_router_that_asks_for_client_certificates(router: str, pki: dict, tmp_path) -> None:
    """The gateway presented no certificate: behind mutual TLS it was never ready and degraded every request."""
    import json
    import ssl

    import httpx

    upstreams = tmp_path / "upstreams.json"
    upstreams.write_text(json.dumps({"models": {"gemma-7b-it": {"base_url": "http://127.0.0.1:1/v1", "model": "g"}}}))
    port = free_port()
    env = service_env("redis://127.0.0.1:1/0", ROUTER_ADDR=router, TAGROUTER_UPSTREAMS=str(upstreams),
                      TAGROUTER_PORT=str(port), TAGROUTER_TLS_CA_FILE=str(pki["ca.pem"]),
                      TAGROUTER_TLS_CERT_FILE=str(pki["client.pem"]), TAGROUTER_TLS_KEY_FILE=str(pki["client.key"]))
    gateway = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        ready, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:  # the gateway serves HTTPS with its certificate too
            try:
                ready = httpx.get(f"https://127.0.0.1:{port}/readyz", timeout=3,
                                  verify=ssl.create_default_context(cafile=str(pki["ca.pem"]))).json()
                if ready.get("ready"):
                    break
            except httpx.HTTPError:
                pass
            assert gateway.poll() is None
            time.sleep(0.3)
        assert ready == {"ready": True}
    finally:
        gateway.terminate()
        gateway.wait(15)


@pytest.mark.standalone_only(reason="starts its own password-protected redis-server")
def test_redis_password_is_never_logged(tmp_path):
    with EmbeddedRedis(password="hunter2-redis-pw") as url:
        scorer = Process("scorer", service_env(url, TAGROUTER_LOG_LEVEL="DEBUG"))
        try:
            wait_serving(scorer.address)
        finally:
            scorer.stop()
        wrong = url.replace("hunter2-redis-pw", "wrong-pw-xyz")
        failing = Process("scorer", service_env(wrong, TAGROUTER_LOG_LEVEL="DEBUG"))
        try:
            with pytest.raises(TimeoutError):
                wait_serving(failing.address, timeout=3)
        finally:
            failing.stop()
    logs = scorer.output() + failing.output()
    assert "SERVING" in logs
    assert "hunter2-redis-pw" not in logs and "wrong-pw-xyz" not in logs


def test_metrics_are_exposed(redis_url, clean_redis):
    port = free_port()
    with running_stack(redis_url) as procs:
        router = Process("router", service_env(redis_url, TAGROUTER_METRICS_PORT=str(port)),
                         "--tagger-addr", procs["tagger"].address, "--scorer-addr", procs["scorer"].address)
        try:
            wait_serving(router.address)
            with grpc.insecure_channel(router.address) as channel:
                stub = router_pb2_grpc.RouterServiceStub(channel)
                stub.Route(router_pb2.RouteRequest(query="Write a haiku about rain"), timeout=5)
                with pytest.raises(grpc.RpcError):
                    stub.Route(router_pb2.RouteRequest(query=" "), timeout=5)
            # The server counts a call after its status is sent: a client that scrapes at once can be
            # ahead of the count, so read again (bounded) until the refused call is in.
            for _ in range(50):
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                if 'code="INVALID_ARGUMENT",method="Route"' in text:
                    break
                time.sleep(0.1)
        finally:
            router.stop()
    assert 'tagrouter_rpc_requests_total{code="OK",method="Route",service="RouterService"} 1.0' in text
    assert 'code="INVALID_ARGUMENT",method="Route"' in text
    for phase in ("tag", "score", "decide"):
        assert f'tagrouter_route_phase_latency_seconds_count{{phase="{phase}"}}' in text
    assert "tagrouter_routed_estimated_cost_usd_total{model=" in text
    assert "tagrouter_route_scored_from_copy_total 1.0" in text  # scored from the router's copy
    assert "tagrouter_weights_copy_age_seconds " in text


@pytest.mark.parametrize("variable, value, says", [
    ("TAGROUTER_TLS_KEY_FILE", "client.key", "are not a PEM certificate and its private key"),
    ("TAGROUTER_TLS_CLIENT_CA_FILE", "server.key", "is not a PEM CA bundle"),
    ("TAGROUTER_TLS_CA_FILE", "server.key", "is not a PEM CA bundle"),
])
def test_a_tls_file_that_does_not_load_is_named_at_start(redis_url, tmp_path, variable, value, says):
    """A key that is not the certificate's was reported as 'could not bind' (exit 3, retried on other
    ports by serve all); a CA file that is not one left the router waiting for its downstreams forever."""
    pki = make_pki(tmp_path)
    env = service_env(redis_url, TAGROUTER_TLS_CERT_FILE=str(pki["server.pem"]),
                      TAGROUTER_TLS_KEY_FILE=str(pki["server.key"]), TAGGER_ADDR="127.0.0.1:1", SCORER_ADDR="127.0.0.1:2")
    env[variable] = str(tmp_path / value)
    done = subprocess.run([sys.executable, "-m", "services.router"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert variable in done.stderr and says in done.stderr and "Traceback" not in done.stderr, done.stderr
