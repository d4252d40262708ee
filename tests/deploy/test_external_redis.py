"""The scorer pointed at an external standalone, Sentinel or Cluster Redis, by the chart
(redis.external) and by kustomize (components/external-redis, external-redis-ca): rendered by the
real tools, validated strictly, checked against the code (tests/deploy/consistency.py and
tests/deploy/external_redis.py, REDIS_URL parsed by services/common/redis_url.py)."""
from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import pytest

from services.common import redis_url
from tests.deploy import render
from tests.deploy.consistency import check, container_env
from tests.deploy.external_redis import egress_ports, hosts_of

HERE = Path(__file__).parent
MODES = {"standalone": redis_url.STANDALONE, "sentinel": redis_url.SENTINEL, "cluster": redis_url.CLUSTER}
HELM_SECRETS = ("tagrouter-admin", "tagrouter-redis-external")
KUSTOMIZE_SECRETS = ("tagrouter-admin", "tagrouter-redis")
# What a user's overlay on deploy/k8s/overlays/prod holds for each mode (deploy/README.md).
KUSTOMIZE_OVERLAYS = {
    "standalone": ("rediss", "redis.example.internal:6380/0", ["external-redis", "external-redis-ca"], [6380]),
    "sentinel": ("redis+sentinel", "sentinel-0.redis.example.internal:26379,sentinel-1.redis.example.internal:26379,"
                 "sentinel-2.redis.example.internal:26379/tagrouter/1", ["external-redis"], None),
    "cluster": ("rediss+cluster", "redis-cluster-0.example.internal:7000,redis-cluster-1.example.internal:7001",
                ["external-redis"], [7000, 7001, 7002, 7003, 7004, 7005]),
}
TARGETS = [f"{tool}:{mode}" for tool in ("helm", "kustomize") for mode in MODES]
TLS = {"helm:standalone": True, "helm:sentinel": True, "helm:cluster": False,
       "kustomize:standalone": True, "kustomize:sentinel": False, "kustomize:cluster": True}


def kustomize_external(mode: str) -> list[dict]:
    scheme, location, components, ports = KUSTOMIZE_OVERLAYS[mode]
    tree = Path(tempfile.mkdtemp(prefix="k8s-external-")) / "k8s"
    shutil.copytree(render.K8S, tree)
    overlay = tree / "overlays" / f"prod-external-{mode}"
    overlay.mkdir()
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:", "  - ../prod",
             "components:", *(f"  - ../../components/{c}" for c in components),
             "configMapGenerator:", "  - name: scorer", "    behavior: merge", "    literals:",
             f"      - REDIS_SCHEME={scheme}", f"      - REDIS_LOCATION={location}"]
    if ports:  # a cluster on other ports: the last egress rule of the scorer's policy, as deploy/README.md shows
        lines += ["patches:", "  - target: {kind: NetworkPolicy, name: scorer}", "    patch: |-",
                  "      - op: replace", "        path: /spec/egress/2/ports",
                  f"        value: [{', '.join(f'{{port: {p}, protocol: TCP}}' for p in ports)}]"]
    (overlay / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return render.kustomize(overlay)


def render_external(target: str) -> list[dict]:
    tool, mode = target.split(":")
    if tool == "kustomize":
        return kustomize_external(mode)
    return render.helm_template("prod", "--values", str(HERE / f"external-redis-{mode}.yaml"))


@pytest.fixture(scope="module")
def rendered():
    cache: dict[str, list[dict]] = {}

    def get(target: str) -> list[dict]:
        if target not in cache:
            cache[target] = render_external(target)
        return cache[target]

    return get


def _secrets(target):
    return HELM_SECRETS if target.startswith("helm") else KUSTOMIZE_SECRETS


def _scorer(docs):
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("scorer"))


def _scorer_env(docs):
    problems: list[str] = []
    env, _ = container_env(docs, _scorer(docs)["spec"]["template"]["spec"]["containers"][0], problems, "scorer")
    assert problems == []
    return env


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(rendered, target):
    assert render.validate(rendered(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_agrees_with_the_code(rendered, target):
    assert check(rendered(target), external_secrets=_secrets(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_the_scorer_reaches_the_external_redis_and_no_bundled_one(rendered, target):
    docs = rendered(target)
    mode = target.split(":")[1]
    assert not [d for d in docs if d["kind"] in ("StatefulSet", "PersistentVolumeClaim")]
    assert not [d for d in docs if d["metadata"]["name"].endswith("redis") and d["kind"] != "Secret"]
    url = _scorer_env(docs)["REDIS_URL"]
    target_, hosts, password = hosts_of(url)  # the real parser
    assert target_.mode == MODES[mode]
    assert password == "from-a-secret" and target_.tls == TLS[target]
    assert all("." in host for host, _ in hosts)
    # The scorer's egress is restricted, and admits the ports of every node the URL names.
    allowed = egress_ports(docs, _scorer(docs))
    assert allowed is not None and {p for _, p in hosts} <= allowed
    if mode == "sentinel":
        assert 6379 in allowed  # the primary the sentinels name
    # The password is in no ConfigMap: REDIS_PASSWORD comes from a Secret, REDIS_URL is in no ConfigMap.
    container = _scorer(docs)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["REDIS_PASSWORD"]["valueFrom"]
    names = [e["name"] for e in container["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")  # the kubelet expands only earlier ones
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        assert "REDIS_URL" not in cm.get("data", {}) and "REDIS_PASSWORD" not in cm.get("data", {})


@pytest.mark.parametrize("target", ["helm:standalone", "helm:sentinel", "kustomize:standalone"])
def test_the_ca_bundle_is_mounted_read_only(rendered, target):
    docs = rendered(target)
    pod = _scorer(docs)["spec"]["template"]["spec"]
    path = _scorer_env(docs)["TAGROUTER_REDIS_CA_FILE"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert ("secret" in volume) != ("configMap" in volume)


# --- the checks catch what goes wrong ------------------------------------------------------

def test_a_redis_port_the_policy_does_not_admit_is_caught(rendered):
    docs = copy.deepcopy(rendered("helm:cluster"))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("scorer"))
    policy["spec"]["egress"][2]["ports"] = [p for p in policy["spec"]["egress"][2]["ports"] if p["port"] != 7001]
    assert "may not reach port 7001 of its cluster Redis" in "\n".join(check(docs, external_secrets=HELM_SECRETS))


def test_a_password_defined_after_the_url_is_caught(rendered):
    docs = copy.deepcopy(rendered("kustomize:sentinel"))
    env = _scorer(docs)["spec"]["template"]["spec"]["containers"][0]["env"]
    env.sort(key=lambda e: e["name"] == "REDIS_PASSWORD")
    assert "is not expanded" in "\n".join(check(docs, external_secrets=KUSTOMIZE_SECRETS))


def test_a_sentinel_url_without_its_service_name_is_caught(rendered):
    docs = copy.deepcopy(rendered("kustomize:sentinel"))
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "REDIS_LOCATION" in d.get("data", {}))
    cm["data"]["REDIS_LOCATION"] = "sentinel-0.redis.example.internal:26379"
    problems = "\n".join(check(docs, external_secrets=KUSTOMIZE_SECRETS))
    assert "the service would not start: REDIS_URL must be redis+sentinel://" in problems


def test_the_kustomize_component_without_a_url_fails_to_start():
    tree = Path(tempfile.mkdtemp(prefix="k8s-external-")) / "k8s"
    shutil.copytree(render.K8S, tree)
    overlay = tree / "overlays" / "bare"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [../dev]\ncomponents: [../../components/external-redis]\n")
    assert "REDIS_URL must start with redis://" in "\n".join(check(render.kustomize(overlay)))


def test_a_leftover_bundled_redis_and_a_password_in_a_configmap_are_caught(rendered):
    docs = copy.deepcopy(rendered("helm:standalone"))
    docs += [d for d in render.helm_template("prod") if d["kind"] == "Service" and d["metadata"]["name"].endswith("-redis")]
    next(d for d in docs if d["kind"] == "ConfigMap")["data"]["REDIS_URL_COPY"] = "redis://:hunter2@h.example:6379/0"
    problems = "\n".join(check(docs, external_secrets=HELM_SECRETS))
    assert "Service/tagrouter-redis of the bundled Redis is rendered" in problems
    assert "REDIS_URL_COPY may hold a Redis password" in problems


def test_the_chart_refuses_a_password_in_the_url_and_a_ca_without_tls():
    with pytest.raises(RuntimeError, match="redis.external.url"):
        render.helm_template("prod", "--set", "redis.external.url=redis://:s3cret@redis.example.internal:6379/0")
    with pytest.raises(RuntimeError, match="a CA bundle needs a TLS url"):
        render.helm_template("prod", "--set", "redis.external.url=redis://redis.example.internal:6379/0",
                             "--set", "redis.external.tls.caSecret=ca")


@pytest.mark.parametrize("mode", MODES)
def test_chart_lints_with_an_external_redis(mode):
    out = render._run([render._tool(render.HELM), "lint", "--strict", str(render.CHART), "--values",
                       str(render.CHART / "values-prod.yaml"), "--values", str(HERE / f"external-redis-{mode}.yaml")])
    assert "0 chart(s) failed" in out
