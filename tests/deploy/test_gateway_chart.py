"""The chart's gateway (gateway.enabled): rendered with values-prod.yaml and tests/deploy/gateway-values.yaml,
validated (test_render), checked against the code (consistency.check, here and in test_consistency), and
every disagreement caught when one side changes."""
from __future__ import annotations

import copy

import pytest

from services.common.settings import DEFAULT_PORTS, GatewaySettings, ServerSettings
from services.gateway.upstreams import load
from tests.deploy import render
from tests.deploy.conftest import EXTERNAL_SECRETS, GATEWAY_VALUES
from tests.deploy.consistency import check, container_env

TARGET = "helm:prod+gateway"
GATEWAY = ("--values", str(GATEWAY_VALUES))


def _check(docs, **kwargs):
    return "\n".join(check(docs, external_secrets=EXTERNAL_SECRETS[TARGET], **kwargs))


def _gateway(docs):
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["spec"]["template"]["spec"]["containers"][0]["name"] == "gateway")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_the_chart_renders_no_gateway_unless_enabled(rendered):
    for target in ("helm:defaults", "helm:dev", "helm:prod"):
        assert not [d for d in rendered(target) if "gateway" in d["metadata"]["name"]
                    or d["metadata"]["name"].endswith("router-pods")], target


def test_the_chart_gateway_agrees_with_the_code(rendered, tmp_path):
    docs = rendered(TARGET)
    assert render.validate(docs) == [] and _check(docs) == ""
    deployment, container = _gateway(docs)
    problems: list[str] = []
    env, _ = container_env(docs, container, problems, "gateway")
    assert problems == []
    server = ServerSettings.from_env("gateway", env)
    assert server.port == DEFAULT_PORTS["gateway"] == container["ports"][0]["containerPort"]
    # The upstreams file: the chart's ConfigMap, at the path TAGROUTER_UPSTREAMS names, with the API key
    # its api_key_env names coming from the Secret.
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "upstreams")
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    assert env["TAGROUTER_UPSTREAMS"] == "/etc/tagrouter/upstreams.yaml"
    path = tmp_path / "upstreams.yaml"
    path.write_text(cm["data"]["upstreams.yaml"])
    settings = GatewaySettings.from_env({**env, "TAGROUTER_UPSTREAMS": str(path)})
    assert load(path, env).models["gpt4_1106_preview"].api_key == "from-a-secret"
    # The router address: the headless Service of the router pods' gRPC port (dns:/// round_robin
    # spreads the gateway's Route calls over all of them).
    host, port = settings.router_addr.rsplit(":", 1)
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host)
    router = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-router"))
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= router["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(int(port), "grpc")]
    assert int(port) == DEFAULT_PORTS["router"]


def test_the_chart_and_the_component_run_the_same_gateway(rendered):
    """The same command, ports, probes, variables and locked-down pod from both."""
    def shape(docs):
        deployment, c = _gateway(docs)
        pod = deployment["spec"]["template"]["spec"]
        names = set()
        for source in c["envFrom"]:
            name = source["configMapRef"]["name"]
            cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
            names |= set(cm["data"])
        return (c["command"], [(p["name"], p["containerPort"]) for p in c["ports"]], c["readinessProbe"],
                c["livenessProbe"], c["securityContext"], pod["securityContext"], sorted(names),
                [m["mountPath"] for m in c["volumeMounts"]])

    assert shape(rendered("kustomize:prod+gateway")) == shape(rendered(TARGET))


def test_an_existing_upstreams_config_map_is_mounted_instead():
    docs = render.helm_template("prod", *GATEWAY, "--set", "gateway.upstreams.existingConfigMap=my-upstreams")
    assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("gateway-upstreams")]
    deployment, _ = _gateway(docs)
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "upstreams")
    assert volume["configMap"] == {"name": "my-upstreams", "items": [{"key": "upstreams.yaml", "path": "upstreams.yaml"}]}
    assert "ConfigMap my-upstreams is neither rendered nor documented as external" in _check(docs)
    assert _check(docs, external_config_maps=("my-upstreams",)) == ""


def test_the_values_are_checked():
    with pytest.raises(RuntimeError, match="additional properties"):
        render.helm_template("prod", *GATEWAY, "--set", "gateway.replicaz=3")
    with pytest.raises(RuntimeError, match="does not match pattern"):
        render.helm_template("prod", *GATEWAY, "--set", "gateway.apiKeys[0].name=not a variable")
    with pytest.raises(RuntimeError, match="the upstreams file"):
        render.helm_template("prod", *GATEWAY, "--set", "gateway.upstreams.content=")
    assert "0 chart(s) failed" in render.helm_lint("prod")


# --- one side changes: each disagreement is caught -------------------------------------------

def test_a_port_changed_in_the_values_only_is_caught():
    problems = _check(render.helm_template("prod", *GATEWAY, "--set", "gateway.port=8081"))
    assert "listens on 8081, the code's default port is 8080" in problems


def test_a_default_port_changed_in_the_code_only_is_caught(rendered):
    problems = _check(rendered(TARGET), default_ports={**DEFAULT_PORTS, "gateway": 8000})
    assert "listens on 8080, the code's default port is 8000" in problems


def test_a_probe_path_or_port_changed_is_caught(rendered):
    docs = copy.deepcopy(rendered(TARGET))
    _, container = _gateway(docs)
    container["readinessProbe"]["httpGet"]["path"] = "/ready"
    container["livenessProbe"]["httpGet"]["port"] = 9090
    problems = _check(docs)
    assert "readinessProbe gets /ready on port http, the gateway answers /readyz on 8080" in problems
    assert "livenessProbe gets /healthz on port 9090" in problems


def test_a_router_address_on_no_service_port_is_caught(rendered):
    docs = copy.deepcopy(rendered(TARGET))
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "ROUTER_ADDR" in d.get("data", {}))
    cm["data"]["ROUTER_ADDR"] = cm["data"]["ROUTER_ADDR"].replace(":50051", ":50054")
    assert "has no port 50054" in _check(docs)


def test_api_keys_must_match_the_upstreams_file():
    missing = _check(render.helm_template("prod", *GATEWAY, "--set-json", "gateway.apiKeys=[]"))
    assert "would not start" in missing and "'OPENAI_API_KEY' is not set" in missing
    extra = _check(render.helm_template(
        "prod", *GATEWAY, "--set-json",
        'gateway.apiKeys=[{"name": "OPENAI_API_KEY", "secretName": "llm-api-keys", "secretKey": "openai"},'
        ' {"name": "ANTHROPIC_KEY", "secretName": "llm-api-keys", "secretKey": "anthropic"}]'))
    assert "sets ANTHROPIC_KEY, which no service reads" in extra


def test_egress_that_blocks_an_upstream_or_the_router_is_caught(rendered):
    problems = _check(render.helm_template("prod", *GATEWAY, "--set-json", "networkPolicy.gatewayEgressPorts=[443]"))
    assert "the gateway may not reach port 8000 of an upstream" in problems
    docs = copy.deepcopy(rendered(TARGET))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-gateway"))
    policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] != "grpc"]
    assert "the gateway may not reach the router's grpc port" in _check(docs)


def test_an_unrestricted_egress_is_the_default(rendered):
    docs = render.helm_template(None, "--set", "gateway.enabled=true")
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-gateway"))
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
    assert render.validate(docs) == [] and check(docs) == []
