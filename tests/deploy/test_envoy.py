"""Envoy with the router's external processor: the kustomize component and the chart's `envoy` values.

Both render, validate strictly, agree with the code (the router's extproc port, the ext_proc filter
the tests run through a real Envoy) and, with the Envoy of `make envoy-tools`, pass `envoy --mode
validate`.
"""
from __future__ import annotations

import subprocess

import pytest
import yaml

from services.common.settings import RouterSettings
from tagrouter.stack.envoy import MODEL_HEADER, envoy_binary, ext_proc_filter
from tests.deploy import render
from tests.deploy.consistency import _port, _selects, check, container_env

HELM_ENVOY = ("--set", "envoy.enabled=true")


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    return {"kustomize": render.overlay_with(tmp_path_factory.mktemp("k8s"), "envoy"),
            "helm": render.helm_template("dev", *HELM_ENVOY)}


def envoy_config(docs: list[dict]) -> dict:
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("envoy"))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    return yaml.safe_load(cm["data"]["envoy.yaml"])


def manager(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def filters(config: dict) -> dict[str, dict]:
    return {f["name"]: f["typed_config"] for f in manager(config)["http_filters"]}


def route_list(config: dict) -> list[dict]:
    return manager(config)["route_config"]["virtual_hosts"][0]["routes"]


@pytest.mark.parametrize("tool", ["kustomize", "helm"])
def test_envoy_renders_validates_and_agrees_with_the_code(targets, tool):
    docs = targets[tool]
    assert render.validate(docs) == []
    assert check(docs) == []  # the router's extproc container port is the one it listens on, among the rest
    router = next(d for d in docs if d["kind"] == "Deployment" and d["spec"]["template"]["spec"]["containers"][0]["name"]
                  == "router")
    container = router["spec"]["template"]["spec"]["containers"][0]
    env, _ = container_env(docs, container, [], "router")
    settings = RouterSettings.from_env(env)
    config = envoy_config(docs)
    # the ext_proc cluster: a headless Service selecting every router pod, on the extproc port
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "tagrouter_extproc")
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == address["address"])
    assert service["spec"]["clusterIP"] == "None"
    assert _selects(service["spec"]["selector"], router["spec"]["template"]["metadata"]["labels"])
    port = next(p for p in service["spec"]["ports"] if p["port"] == address["port_value"])
    assert port["targetPort"] == "extproc" and _port(container, "extproc") == settings.extproc_port == 50054
    # the same filter as the tests run through a real Envoy, fail closed by default
    extproc = filters(config)["envoy.filters.http.ext_proc"]
    expected = ext_proc_filter("tagrouter_extproc", False, 1.0)["typed_config"]
    assert extproc["processing_mode"] == expected["processing_mode"]
    assert extproc["failure_mode_allow"] is False
    assert extproc["grpc_service"]["envoy_grpc"]["cluster_name"] == cluster["name"]
    routes = route_list(config)
    assert all(r["match"]["headers"][0]["name"] == MODEL_HEADER for r in routes[:-1]) and len(routes) >= 3
    # Envoy itself: locked down, probed on its health-check path
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("envoy"))
    pod = deployment["spec"]["template"]["spec"]
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"] and pod["securityContext"]["runAsNonRoot"]
    assert pod["automountServiceAccountToken"] is False
    health = filters(config)["envoy.filters.http.health_check"]["headers"][0]["string_match"]["exact"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == health


def test_the_chart_fails_open_to_a_fallback_model_only_of_the_pool():
    docs = render.helm_template("dev", *HELM_ENVOY, "--set", "envoy.failureModeAllow=true",
                                "--set", "envoy.fallbackModel=gpt4_1106_preview")
    config = envoy_config(docs)
    assert filters(config)["envoy.filters.http.ext_proc"]["failure_mode_allow"] is True
    last = route_list(config)[-1]
    assert last == {"match": {"prefix": "/"}, "route": {"cluster": "llm_0", "timeout": "300s"}}
    with pytest.raises(RuntimeError, match="not one of envoy.upstreams"):
        render.helm_template("dev", *HELM_ENVOY, "--set", "envoy.fallbackModel=nope")
    with pytest.raises(RuntimeError, match="needs router.extprocPort"):
        render.helm_template("dev", *HELM_ENVOY, "--set", "router.extprocPort=0")


@pytest.mark.parametrize("tool", ["kustomize", "helm"])
def test_envoy_accepts_the_configuration(targets, tool, tmp_path):
    binary = envoy_binary()
    if binary is None:
        pytest.skip("no envoy binary (`make envoy-tools`): only `envoy --mode validate` is skipped")
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(envoy_config(targets[tool])))
    done = subprocess.run([str(binary), "--mode", "validate", "-c", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
