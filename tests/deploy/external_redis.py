"""The scorer against an external Redis (no bundled StatefulSet): what tests/deploy/consistency.py
checks then, with the real parser of REDIS_URL (services/common/redis_url.py).

- REDIS_URL expands fully (the kubelet expands only variables defined earlier) and is one of
  the three forms; its password, if any, comes from a Secret;
- no object of the bundled Redis is left (StatefulSet, Service, ServiceAccount, NetworkPolicy);
- every NetworkPolicy that restricts the scorer's egress lets it reach every port the URL names;
- TAGROUTER_REDIS_CA_FILE is a key of a Secret or ConfigMap mounted read-only;
- no ConfigMap holds a password.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import certifi

from services.common import redis_url

# Stands for the mounted CA bundle when the settings check TAGROUTER_REDIS_CA_FILE (a real PEM bundle).
STAND_IN_CA = certifi.where()
SECRET_PLACEHOLDER = "from-a-secret"  # as tests/deploy/consistency.py puts secret values
BUNDLED_KINDS = ("StatefulSet", "Service", "ServiceAccount", "NetworkPolicy", "PersistentVolumeClaim")


def _labels(workload) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def _selects(selector, labels) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def with_stand_in_ca(env: dict) -> dict:
    """`env` with TAGROUTER_REDIS_CA_FILE, if set, on a real bundle here (the path is in the pod)."""
    return {**env, "TAGROUTER_REDIS_CA_FILE": STAND_IN_CA} if env.get("TAGROUTER_REDIS_CA_FILE") else env


def hosts_of(url: str) -> tuple[redis_url.RedisTarget, list[tuple[str, int]], str | None]:
    """The parsed target, its (host, port)s and its password, as the scorer's client would see them."""
    target = redis_url.parse(url)
    if target.mode == redis_url.STANDALONE:
        parts = urlsplit(url)
        return target, [(parts.hostname or "", parts.port or 6379)], parts.password
    return target, list(target.hosts), target.password


def _is_bundled(doc) -> bool:
    labels = doc.get("metadata", {}).get("labels", {})
    name = doc["metadata"]["name"]
    return labels.get("app.kubernetes.io/component") == "redis" or name == "redis" or name.endswith("-redis")


def egress_ports(docs, workload) -> set | None:
    """Ports the pods of `workload` may reach outside the cluster (None: egress not restricted)."""
    policies = [p for p in docs if p.get("kind") == "NetworkPolicy"
                and "Egress" in p["spec"].get("policyTypes", [])
                and _selects(p["spec"]["podSelector"].get("matchLabels"), _labels(workload))]
    if not policies:
        return None
    ports: set = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            if any("ipBlock" not in to for to in rule.get("to", [])):
                continue  # pods of the cluster (DNS, the tagger): not an external Redis
            if not rule.get("ports"):
                return None  # every port
            ports |= {p["port"] for p in rule["ports"]}
    return ports


def problems(docs: list[dict], scorer, url: str) -> list[str]:
    found: list[str] = []
    where = "scorer REDIS_URL (external Redis)"
    if "$(" in url:
        return [f"{where}: a $(...) reference is not expanded (not defined, or defined after REDIS_URL)"]
    try:
        target, hosts, password = hosts_of(url)
    except redis_url.RedisUrlError as err:
        return [f"{where}: {err}"]
    if password not in (None, "", SECRET_PLACEHOLDER):
        found.append(f"{where}: holds a password that comes from no Secret")
    services = {d["metadata"]["name"] for d in docs if d.get("kind") == "Service"}
    for host, _ in hosts:
        if "." not in host and host not in services and host != "localhost":
            found.append(f"{where}: names {host!r}, which is no rendered Service and no fully qualified name")
    for doc in docs:
        if doc.get("kind") in BUNDLED_KINDS and _is_bundled(doc):
            found.append(f"{doc['kind']}/{doc['metadata']['name']} of the bundled Redis is rendered beside an external one")
    allowed = egress_ports(docs, scorer)
    if allowed is not None:
        for port in sorted({p for _, p in hosts} - allowed):
            found.append(f"NetworkPolicy: the scorer may not reach port {port} of its {target.mode} Redis")
    container = next(c for c in scorer["spec"]["template"]["spec"]["containers"] if c["name"] == "scorer")
    ca = next((e.get("value", "") for e in container.get("env", []) if e["name"] == "TAGROUTER_REDIS_CA_FILE"), "")
    if ca:
        found += _ca_problems(scorer, container, ca)
        if not target.tls:
            found.append(f"{where}: TAGROUTER_REDIS_CA_FILE is set, but the URL is not TLS")
    for doc in docs:
        if doc.get("kind") != "ConfigMap":
            continue
        for key, value in (doc.get("data") or {}).items():
            if "PASSWORD" in key.upper() or (isinstance(value, str) and "://" in value and "@" in value):
                found.append(f"ConfigMap {doc['metadata']['name']}: {key} may hold a Redis password")
    return found


def _ca_problems(workload, container, path: str) -> list[str]:
    mount = next((m for m in container.get("volumeMounts", [])
                  if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if mount is None:
        return [f"TAGROUTER_REDIS_CA_FILE={path} is in no mounted volume"]
    found = [] if mount.get("readOnly") else [f"TAGROUTER_REDIS_CA_FILE: volume {mount['name']} is not mounted read-only"]
    volume = next((v for v in workload["spec"]["template"]["spec"].get("volumes", []) if v["name"] == mount["name"]), {})
    source = volume.get("secret") or volume.get("configMap")
    if source is None:
        return found + [f"TAGROUTER_REDIS_CA_FILE: volume {mount['name']} is neither a Secret nor a ConfigMap"]
    relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
    items = {i["path"]: i["key"] for i in source.get("items", [])}
    if items and relative not in items:
        found.append(f"TAGROUTER_REDIS_CA_FILE={path}: no item of volume {mount['name']} is at {relative}")
    return found
