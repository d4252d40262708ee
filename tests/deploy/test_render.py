"""Every overlay and both values files render, and every object validates strictly."""
from __future__ import annotations

import copy
import re
import subprocess

import pytest

from tests.deploy import render
from tests.deploy.conftest import TARGETS


def _kinds(docs):
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def _by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _containers(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield d, c


def test_base_builds():
    docs = render.kustomize(render.K8S / "base")
    assert not render.validate(docs)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ServiceAccount", "StatefulSet", "ConfigMap"}


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(rendered, target):
    docs = rendered(target)
    assert docs, f"{target} rendered nothing"
    assert render.validate(docs) == []


def test_validation_is_strict_and_knows_no_unknown_kinds(rendered):
    """An unknown field, a wrong type, an unknown kind: each is reported."""
    docs = copy.deepcopy(rendered("kustomize:prod"))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    hpa["spec"]["minReplicas"] = "two"
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["prot"] = "metrics"
    docs.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    errors = "\n".join(render.validate(docs))
    assert "grpcc" in errors and "minReplicas" in errors and "prot" in errors and "Widget" in errors


@pytest.mark.parametrize("values", [None, *render.HELM_VALUES])
def test_chart_lints(values):
    out = render.helm_lint(values)
    assert "0 chart(s) failed" in out


def test_chart_schema_rejects_unknown_values():
    with pytest.raises(RuntimeError, match="additional properties"):
        render.helm_template("dev", "--set", "tagger.replicaz=3")


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_locked_down(rendered, target):
    docs = rendered(target)
    for workload, c in _containers(docs):
        where = f"{target} {workload['metadata']['name']}/{c['name']}"
        pod = workload["spec"]["template"]["spec"]
        sc = c.get("securityContext", {})
        assert set(c["resources"]) == {"requests", "limits"}, where
        resources = c["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), where
        assert sc.get("runAsNonRoot") or pod.get("securityContext", {}).get("runAsNonRoot"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert c.get("readinessProbe") and c.get("livenessProbe"), where
        assert pod.get("automountServiceAccountToken") is False, where


@pytest.mark.parametrize("tool", ["kustomize", "helm"])
def test_dev_profile(rendered, tool):
    docs = rendered(f"{tool}:dev")
    deployments = _by_kind(docs, "Deployment")
    assert len(deployments) == 3 and all(d["spec"]["replicas"] == 1 for d in deployments.values())
    assert not _by_kind(docs, "HorizontalPodAutoscaler") and not _by_kind(docs, "PodDisruptionBudget")
    common = [cm for cm in docs if cm["kind"] == "ConfigMap" and "TAGROUTER_REFLECTION" in cm.get("data", {})]
    assert [cm["data"]["TAGROUTER_REFLECTION"] for cm in common] == ["true"]
    assert _by_kind(docs, "Secret"), "dev brings its own Redis password"


@pytest.mark.parametrize("tool", ["kustomize", "helm"])
def test_prod_profile(rendered, tool):
    docs = rendered(f"{tool}:prod")
    hpas = _by_kind(docs, "HorizontalPodAutoscaler")
    targets = sorted(h["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[-1] for h in hpas.values())
    assert targets == ["router", "tagger"]
    assert all(h["apiVersion"] == "autoscaling/v2" for h in hpas.values())
    deployments = _by_kind(docs, "Deployment")
    for name, d in deployments.items():
        autoscaled = name.endswith(("tagger", "router"))
        assert ("replicas" in d["spec"]) != autoscaled, f"{name}: an HPA owns replicas, or replicas are set"
    assert next(d for n, d in deployments.items() if n.endswith("scorer"))["spec"]["replicas"] >= 2
    assert len(_by_kind(docs, "PodDisruptionBudget")) == 3
    policies = {name.rsplit("-", 1)[-1] for name in _by_kind(docs, "NetworkPolicy")}
    # kustomize's network-policies component has the gateway's too (inert without components/gateway)
    assert policies == {"tagger", "scorer", "redis", "router"} | ({"gateway"} if tool == "kustomize" else set())
    monitors = {name.rsplit("-", 1)[-1] for name in _by_kind(docs, "ServiceMonitor")}  # one per service
    assert monitors == {"tagger", "scorer", "router"} | ({"gateway"} if tool == "kustomize" else set())
    assert [d for d in docs if d["metadata"]["name"].endswith("grafana-dashboard")], "prod ships the dashboard"
    assert len(_by_kind(docs, "PrometheusRule")) == (tool == "helm"), "the chart's prod values turn the alert rules on"
    common = [cm for cm in docs if cm["kind"] == "ConfigMap" and "TAGROUTER_REFLECTION" in cm.get("data", {})]
    assert [cm["data"]["TAGROUTER_REFLECTION"] for cm in common] == ["false"]
    assert not _by_kind(docs, "Secret"), "prod's Redis Secret is created beforehand, not checked in"


@pytest.mark.parametrize("target", TARGETS)
def test_redis_is_persistent_and_protected(rendered, target):
    docs = rendered(target)
    (redis,) = _by_kind(docs, "StatefulSet").values()
    c = redis["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    password = next(e for e in c["env"] if e["name"] == "REDIS_PASSWORD")
    assert "secretKeyRef" in password["valueFrom"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert any(m["name"] == claim["metadata"]["name"] and m["mountPath"] == "/data" for m in c["volumeMounts"])


@pytest.mark.parametrize("target", [t for t in TARGETS if t.endswith("prod")])
def test_network_policies_admit_only_the_callers(rendered, target):
    docs = rendered(target)

    def policy(component):
        return next(p for p in docs if p["kind"] == "NetworkPolicy" and p["metadata"]["name"].endswith(component))

    def callers(component, ports=("grpc", "redis")):
        found = set()
        for rule in policy(component)["spec"]["ingress"]:
            if any(p["port"] in ports for p in rule.get("ports", [])):
                for frm in rule.get("from", [{"everyone": True}]):
                    labels = frm.get("podSelector", {}).get("matchLabels", {})
                    namespace = frm.get("namespaceSelector", {}).get("matchLabels", {})
                    found.add(labels.get("app.kubernetes.io/component") or labels.get("app.kubernetes.io/name")
                              or (f"namespace {namespace['kubernetes.io/metadata.name']}" if namespace else "everyone"))
        return found

    assert callers("tagger") == {"router"}
    assert callers("scorer") == {"router"}
    assert callers("redis") == {"scorer"}
    # The entry points: any client (the gateway among them) calls the router's gRPC port, and the
    # gateway's HTTP port; their metrics only from the monitoring namespace.
    assert callers("router") == {"everyone"}
    assert callers("router", ("metrics",)) == {"namespace monitoring"}
    gateway = [p for p in docs if p["kind"] == "NetworkPolicy" and p["metadata"]["name"].endswith("gateway")]
    assert bool(gateway) == (target.startswith("kustomize") or target.endswith("+gateway"))
    if not gateway:
        return
    assert callers("gateway", ("http",)) == {"everyone"}
    assert callers("gateway", ("metrics",)) == {"namespace monitoring"}
    assert all(p["port"] in ("http", "metrics") for rule in policy("gateway")["spec"]["ingress"] for p in rule["ports"])
    spec = policy("gateway")["spec"]
    if "Egress" not in spec["policyTypes"]:
        assert "egress" not in spec  # unrestricted: the upstream LLM providers are outside the cluster
        return
    reached = set()
    for rule in spec["egress"]:
        ports = {(p["port"], p["protocol"]) for p in rule["ports"]}
        for to in rule.get("to", [{"anywhere": True}]):
            labels = {**to.get("namespaceSelector", {}).get("matchLabels", {}),
                      **to.get("podSelector", {}).get("matchLabels", {})}
            peer = labels.get("app.kubernetes.io/component") or labels.get("k8s-app") or "anywhere"
            reached |= {(peer, port, protocol) for port, protocol in ports}
    assert reached == {("kube-dns", 53, "UDP"), ("kube-dns", 53, "TCP"), ("router", "grpc", "TCP"),
                       ("anywhere", 443, "TCP"), ("anywhere", 8000, "TCP")}  # tests/deploy/gateway-values.yaml


def test_dockerfile_lints_and_keeps_the_runtime_lean():
    dockerfile = (render.REPO_ROOT / "Dockerfile").read_text()
    hadolint = render.KUBECTL.parent / "hadolint"
    done = subprocess.run([str(hadolint), str(render.REPO_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    code = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    stages = re.split(r"^FROM ", code, flags=re.M)[1:]
    runtime = next(s for s in stages if " AS runtime" in s.splitlines()[0])
    # The runtime installs nothing: it copies the serving venv (pyproject's main dependencies,
    # wheels only) and the exported model, and proves at build time that torch is absent.
    assert not re.search(r"pip install|apt-get|apk add|gcc|build-essential", runtime)
    assert set(re.findall(r"COPY --from=(\w+)", runtime)) == {"deps", "export"}
    assert '! python -c "import torch"' in runtime
    deps = next(s for s in stages if " AS deps" in s.splitlines()[0])
    assert "['project']['dependencies']" in deps and "--only-binary=:all:" in deps and "torch" not in deps
    assert re.search(r"^USER 10001", runtime, re.M)
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-", dockerfile, re.M), "base image pinned to a patch tag"
    ignore = (render.REPO_ROOT / ".dockerignore").read_text().split()
    assert ignore[0:1] == ["*"] or "*" in ignore
