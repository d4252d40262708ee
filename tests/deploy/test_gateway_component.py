"""The gateway's kustomize component: rendered on the dev overlay, validated, and checked against the code."""
from __future__ import annotations

import shutil

from services.common.settings import DEFAULT_PORTS, ENVIRONMENT, GatewaySettings, ServerSettings
from tests.deploy import render
from tests.deploy.consistency import container_env


def rendered(tmp_path) -> list[dict]:
    """The dev overlay with the component added, as a user adds it (generated names resolve only within
    one kustomization)."""
    shutil.copytree(render.K8S, tmp_path / "k8s", dirs_exist_ok=True)
    overlay = tmp_path / "k8s" / "overlays" / "dev"
    text = (overlay / "kustomization.yaml").read_text()
    assert "components:\n" in text
    text = text.replace("components:\n", "components:\n  - ../../components/gateway\n", 1)
    (overlay / "kustomization.yaml").write_text(text)
    return render.kustomize(overlay)


def test_the_gateway_component_renders_validates_and_agrees_with_the_code(tmp_path):
    docs = rendered(tmp_path)
    assert render.validate(docs) == []
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    problems: list[str] = []
    env, _ = container_env(docs, container, problems, "gateway")
    assert problems == []
    for name in env:
        assert name in ENVIRONMENT and ENVIRONMENT[name][0] in ("all", "gateway"), name
    server = ServerSettings.from_env("gateway", env)
    assert server.port == DEFAULT_PORTS["gateway"] == container["ports"][0]["containerPort"]
    upstreams = [v for v in pod["volumes"] if v["name"] == "upstreams"][0]["configMap"]["name"]
    mount = [m for m in container["volumeMounts"] if m["name"] == "upstreams"][0]["mountPath"]
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == upstreams)
    path = tmp_path / "upstreams.yaml"
    key = env["TAGROUTER_UPSTREAMS"].removeprefix(mount + "/")
    path.write_text(cm["data"][key])
    settings = GatewaySettings.from_env({**env, "TAGROUTER_UPSTREAMS": str(path)})
    host, port = settings.router_addr.rsplit(":", 1)
    router = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == host)
    assert int(port) in [p["port"] for p in router["spec"]["ports"]]
    from services.gateway.upstreams import load

    assert load(path, {}).pool  # the example file is a valid upstreams file
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["automountServiceAccountToken"] is False
