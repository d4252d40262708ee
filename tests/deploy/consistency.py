"""Rendered manifests against the code: ports, environment variable names, probe targets. `check(docs)` returns
the disagreements (none when they agree). The code side is the code itself: ENVIRONMENT and DEFAULT_PORTS from
services/common/settings.py, the gRPC service names from services/*/app.py, and the settings classes parsing the
environment a container would really get (an external Redis: tests/deploy/external_redis.py)."""
from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from services.common import settings as cfg
from services.common.settings import DEFAULT_PORTS, ENVIRONMENT, ConfigError
from services.gateway.upstreams import load
from services.router.app import SERVICE_NAME as ROUTER_SERVICE
from services.scorer.app import SERVICE_NAME as SCORER_SERVICE
from services.tagger.app import SERVICE_NAME as TAGGER_SERVICE
from tests.deploy import external_redis, image_paths, starter_weights

SERVICES = ("tagger", "scorer", "router")
SERVICE_NAMES = {"tagger": TAGGER_SERVICE, "scorer": SCORER_SERVICE, "router": ROUTER_SERVICE}
SETTINGS = {"tagger": cfg.TaggerSettings, "scorer": cfg.ScorerSettings, "router": cfg.RouterSettings}
METRICS_PORT = 9090  # reserved for every container (TAGROUTER_METRICS_PORT's default)
SECRET_PLACEHOLDER = "from-a-secret"  # URL-safe, like the passwords the docs ask for
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Components an overlay or the values may leave out: their NetworkPolicy may select no pods.
OPTIONAL = ("gateway",)
GATEWAY_PROBES = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}  # services/gateway/app.py
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def _named(docs, kind, name):
    return next((d for d in _kind(docs, kind) if d["metadata"]["name"] == name), None)


def _selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(workload) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def _container(docs, kind, name):
    """(workload, container) for the one container called `name` in a `kind` object."""
    found = [(w, c) for w in _kind(docs, kind) for c in w["spec"]["template"]["spec"]["containers"]
             if c["name"] == name]
    return found[0] if len(found) == 1 else (None, None)


def _port(container, name):
    return next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == name), None)


def container_env(docs, container, problems, where) -> tuple[dict[str, str], set[str]]:
    """The environment Kubernetes would give the container, and the names only used in $(...).

    envFrom ConfigMaps first, then env in order, $(NAME) expanded as the kubelet does;
    secret values become a placeholder.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            problems.append(f"{where}: envFrom other than a configMapRef: {source}")
            continue
        cm = _named(docs, "ConfigMap", ref["name"])
        if cm is None:
            problems.append(f"{where}: ConfigMap {ref['name']} is not rendered")
            continue
        env.update({k: str(v) for k, v in cm.get("data", {}).items()})
    referenced: set[str] = set()
    for item in container.get("env", []):
        if "value" in item:
            value = str(item["value"])
            referenced |= set(_REF.findall(value))
            env[item["name"]] = _REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = SECRET_PLACEHOLDER
        else:
            env[item["name"]] = ""
    return env, referenced


def _secret_refs(container):
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional"):  # an optional Secret may legitimately be absent
            yield ref["name"]


def _service_for(docs, host: str, port: int, workload, target_port_name: str, problems, where, headless: bool):
    """The Service called `host` must expose `port` and send it to the workload's named port."""
    service = _named(docs, "Service", host)
    if service is None:
        problems.append(f"{where}: no Service named {host!r}")
        return
    spec = service["spec"]
    if not _selects(spec.get("selector"), _pod_labels(workload)):
        problems.append(f"{where}: Service {host} does not select the {workload['metadata']['name']} pods")
    if headless and spec.get("clusterIP") != "None":
        problems.append(f"{where}: Service {host} is not headless (clusterIP: None): round_robin needs every pod's address")
    ports = [p for p in spec.get("ports", []) if p["port"] == port]
    if not ports:
        problems.append(f"{where}: Service {host} has no port {port}")
        return
    container = next(c for c in workload["spec"]["template"]["spec"]["containers"])
    target = ports[0].get("targetPort", port)
    if target not in (target_port_name, _port(container, target_port_name)):
        problems.append(f"{where}: Service {host} port {port} targets {target!r}, "
                        f"not the container's {target_port_name} port")


def _probe_problems(svc, container, port, service_names, where):
    problems = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if probe is None:
            if kind != "startupProbe" or svc == "tagger":
                problems.append(f"{where}: no {kind}")
            continue
        grpc = probe.get("grpc")
        if grpc is None:
            problems.append(f"{where}: {kind} is not a native gRPC probe")
            continue
        if grpc.get("port") != port:
            problems.append(f"{where}: {kind} checks port {grpc.get('port')}, the service listens on {port}")
        if grpc.get("service", "") not in ("", service_names[svc]):
            problems.append(f"{where}: {kind} asks for health of {grpc.get('service')!r}, the service "
                            f"reports {service_names[svc]!r} (or '')")
    readiness = container.get("readinessProbe", {}).get("grpc", {})
    if readiness and readiness.get("service") != service_names[svc]:
        problems.append(f"{where}: readinessProbe should name the service {service_names[svc]!r}")
    return problems


def _read_by(readers: str, svc: str) -> bool:
    """ENVIRONMENT's first field: "all", one service, or several ("scorer, router")."""
    return readers == "all" or svc in (r.strip() for r in readers.split(","))


def _policy_component(policy) -> str:
    labels = policy["spec"]["podSelector"].get("matchLabels", {})
    return labels.get("app.kubernetes.io/component") or labels.get("app.kubernetes.io/name", "")


def _check_gateway(docs, environment, default_ports, secrets, config_maps, problems) -> None:
    """The gateway (when rendered): its variables, HTTP port and probes, upstreams file and router address."""
    workload, container = _container(docs, "Deployment", "gateway")
    if container is None:
        return
    where = "Deployment with container gateway"
    env, helpers = container_env(docs, container, problems, where)
    for name in sorted(_secret_refs(container)):
        if name not in secrets:
            problems.append(f"{where}: Secret {name} is neither rendered nor documented as external")
    # The upstreams file: TAGROUTER_UPSTREAMS must be a key of the ConfigMap mounted at its folder.
    pod = workload["spec"]["template"]["spec"]
    path = env.get("TAGROUTER_UPSTREAMS", "")
    mount = next((m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")),
                 None)
    volume = mount and next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), None)
    text = None
    if volume is None or "configMap" not in volume:
        problems.append(f"{where}: TAGROUTER_UPSTREAMS={path!r} is in no mounted ConfigMap")
    else:
        relative = path[len(mount["mountPath"].rstrip("/")) + 1:]
        items = {i["path"]: i["key"] for i in volume["configMap"].get("items", [])}
        key = items.get(relative, relative if not items else None)
        cm = _named(docs, "ConfigMap", volume["configMap"]["name"])
        if cm is None and volume["configMap"]["name"] not in config_maps:
            problems.append(f"{where}: the upstreams ConfigMap {volume['configMap']['name']} is neither rendered "
                            "nor documented as external")
        elif cm is None:
            pass  # an existing ConfigMap: its content is the user's
        elif key not in cm.get("data", {}):
            problems.append(f"{where}: TAGROUTER_UPSTREAMS={path}: ConfigMap {cm['metadata']['name']} has no key {key}")
        else:
            text = cm["data"][key]
    with tempfile.TemporaryDirectory() as folder:
        upstreams_file = Path(folder) / Path(path or "upstreams.yaml").name
        upstreams_file.write_text(text or "models: {unknown: {base_url: 'http://unknown', model: unknown}}\n")
        try:
            server = cfg.ServerSettings.from_env("gateway", env)
            own = cfg.GatewaySettings.from_env({**env, "TAGROUTER_UPSTREAMS": str(upstreams_file)})
            load(upstreams_file, env)  # every api_key_env it names is set
        except ConfigError as err:
            problems.append(f"{where}: the service would not start: {err}")
            return
    # The variables the upstreams file names (api_key_env) are the gateway's too; with an existing
    # upstreams ConfigMap, any variable from a Secret may be one.
    data = yaml.safe_load(text) if text is not None else None
    models = data.get("models", data) if isinstance(data, dict) else {}
    key_names = {m.get("api_key_env") for m in models.values() if isinstance(m, dict)}
    from_secrets = {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    ports = [urlsplit(m["base_url"]).port or (443 if m["base_url"].startswith("https") else 80)
             for m in models.values() if isinstance(m, dict) and isinstance(m.get("base_url"), str)]
    for policy in _kind(docs, "NetworkPolicy"):
        if "Egress" in policy["spec"].get("policyTypes", []) and _selects(
                policy["spec"]["podSelector"].get("matchLabels"), _pod_labels(workload)):
            rules = policy["spec"].get("egress", [])
            if any(not rule.get("to") and not rule.get("ports") for rule in rules):
                continue  # one rule allows everything
            anywhere = {p["port"] for rule in rules if not rule.get("to") for p in rule.get("ports", [])}
            for port in sorted(set(ports) - anywhere):
                problems.append(f"NetworkPolicy {policy['metadata']['name']}: the gateway may not reach port {port} "
                                "of an upstream in its upstreams file")
            router, _ = _container(docs, "Deployment", "router")
            if router is not None and not any(
                    (not rule.get("to") or any(_selects(to.get("podSelector", {}).get("matchLabels"), _pod_labels(router))
                                               and "namespaceSelector" not in to for to in rule["to"]))
                    and {p["port"] for p in rule.get("ports", [])} & {"grpc", _port(router["spec"]["template"]["spec"]
                                                                                    ["containers"][0], "grpc")}
                    for rule in rules):
                problems.append(f"NetworkPolicy {policy['metadata']['name']}: the gateway may not reach the router's "
                                "grpc port")
    for name in sorted(env):
        if name in helpers or name in (key_names if text is not None else from_secrets):
            continue
        if name not in environment:
            problems.append(f"{where}: sets {name}, which no service reads (not in settings.ENVIRONMENT, "
                            "no upstream's api_key_env)")
        elif not _read_by(environment[name][0], "gateway"):
            problems.append(f"{where}: sets {name}, which is read by the {environment[name][0]}, not the gateway")
    http = _port(container, "http")
    if http != server.port:
        problems.append(f"{where}: container port http is {http}, the gateway listens on {server.port}")
    if server.port != default_ports["gateway"]:
        problems.append(f"{where}: listens on {server.port}, the code's default port is {default_ports['gateway']}")
    if server.host in LOOPBACK:
        problems.append(f"{where}: binds {server.host}, unreachable from outside the pod")
    if _port(container, "metrics") != int(env.get("TAGROUTER_METRICS_PORT", METRICS_PORT)):
        problems.append(f"{where}: container port metrics is {_port(container, 'metrics')}, TAGROUTER_METRICS_PORT "
                        f"is {env.get('TAGROUTER_METRICS_PORT', METRICS_PORT)}")
    if pod.get("terminationGracePeriodSeconds", 30) <= server.grace_seconds:
        problems.append(f"{where}: terminationGracePeriodSeconds is not longer than the drain ({server.grace_seconds} s)")
    for kind, expected in GATEWAY_PROBES.items():
        probe = container.get(kind, {}).get("httpGet")
        if probe is None:
            problems.append(f"{where}: {kind} is not an HTTP probe")
        elif probe.get("path") != expected or probe.get("port") not in ("http", server.port):
            problems.append(f"{where}: {kind} gets {probe.get('path')} on port {probe.get('port')}, the gateway "
                            f"answers {expected} on {server.port}")
    if not any(_selects(s["spec"].get("selector"), _pod_labels(workload))
               and any(p.get("targetPort") in ("http", server.port) for p in s["spec"]["ports"])
               for s in _kind(docs, "Service")):
        problems.append(f"{where}: no Service sends a port to the gateway's http port")
    router, _ = _container(docs, "Deployment", "router")
    host, _, port = own.router_addr.rpartition(":")
    if router is None:
        problems.append(f"{where}: ROUTER_ADDR={own.router_addr}, but no router Deployment")
    else:
        _service_for(docs, host, int(port), router, "grpc", problems, f"gateway ROUTER_ADDR={own.router_addr}",
                     headless=False)


def check(docs: list[dict], environment: Mapping[str, tuple[str, str]] = ENVIRONMENT,
          default_ports: Mapping[str, int] = DEFAULT_PORTS, service_names: Mapping[str, str] = SERVICE_NAMES,
          external_secrets: tuple[str, ...] = (), external_config_maps: tuple[str, ...] = ()) -> list[str]:
    """Every disagreement between the rendered objects and the code."""
    problems: list[str] = []
    secrets = {d["metadata"]["name"] for d in _kind(docs, "Secret")} | set(external_secrets)
    workloads = {}
    for svc in SERVICES:
        workload, container = _container(docs, "Deployment", svc)
        where = f"Deployment with container {svc}"
        if container is None:
            problems.append(f"{where}: not found exactly once")
            continue
        workloads[svc] = workload
        env, helpers = container_env(docs, container, problems, where)

        for name in sorted(env):
            if name in helpers:
                continue  # only interpolated into another variable, e.g. REDIS_PASSWORD
            if name not in environment:
                problems.append(f"{where}: sets {name}, which no service reads (not in settings.ENVIRONMENT)")
            elif not _read_by(environment[name][0], svc):
                problems.append(f"{where}: sets {name}, which is read by the {environment[name][0]}, not the {svc}")
        for name in sorted(_secret_refs(container)):
            if name not in secrets:
                problems.append(f"{where}: Secret {name} is neither rendered nor documented as external")

        env = external_redis.with_stand_in_ca(env)  # a mounted CA bundle: external_redis checks the mount
        if env.get("TAGROUTER_MODEL_DIR"):  # the image's model folder (the Dockerfile builds it there)
            env = {**env, "TAGROUTER_MODEL_DIR": str(image_paths.model_dir())}
        try:
            server = cfg.ServerSettings.from_env(svc, env)
            own = workloads[f"{svc}-settings"] = SETTINGS[svc].from_env(env)
        except ConfigError as err:
            problems.append(f"{where}: the service would not start: {err}")
            continue

        grpc_port = _port(container, "grpc")
        if grpc_port != server.port:
            problems.append(f"{where}: container port grpc is {grpc_port}, the service listens on {server.port}")
        if server.port != default_ports[svc]:
            problems.append(f"{where}: listens on {server.port}, the code's default port is {default_ports[svc]}")
        if server.host in LOOPBACK:
            problems.append(f"{where}: binds {server.host}, unreachable from outside the pod")
        metrics = _port(container, "metrics")
        metrics_env = int(env.get("TAGROUTER_METRICS_PORT", METRICS_PORT))
        if metrics != metrics_env or metrics != METRICS_PORT:
            problems.append(f"{where}: container port metrics is {metrics}, TAGROUTER_METRICS_PORT is {metrics_env}, "
                            f"reserved is {METRICS_PORT}")
        grace = workload["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= server.grace_seconds:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is not longer than the drain "
                            f"({server.grace_seconds} s)")
        problems += _probe_problems(svc, container, server.port, service_names, where)
        # Every Service pointing at these pods sends its grpc port to the container's grpc port.
        for service in _kind(docs, "Service"):
            if _selects(service["spec"].get("selector"), _pod_labels(workload)):
                for p in service["spec"]["ports"]:
                    if p["name"] == "grpc" and p.get("targetPort") not in ("grpc", grpc_port):
                        problems.append(f"Service {service['metadata']['name']}: grpc targets {p.get('targetPort')}")
        if svc == "router":
            extproc = _port(container, "extproc")
            if extproc != (own.extproc_port or None):
                problems.append(f"{where}: container port extproc is {extproc}, the external processor listens on "
                                f"{own.extproc_port or 'no port (TAGROUTER_EXTPROC_PORT=0)'}")

    problems += starter_weights.problems(workloads.get("tagger-settings"), workloads.get("scorer-settings"))
    # The router's addresses are the headless Services of the tagger and the scorer.
    router = workloads.get("router-settings")
    for svc in ("tagger", "scorer"):
        if router is None or svc not in workloads:
            continue
        addr = router.tagger_addr if svc == "tagger" else router.scorer_addr
        host, _, port = addr.rpartition(":")
        _service_for(docs, host, int(port), workloads[svc], "grpc", problems,
                     f"router {svc.upper()}_ADDR={addr}", headless=True)
    # The scorer's REDIS_URL names the Redis Service and port.
    scorer = workloads.get("scorer-settings")
    redis_set, redis_container = _container(docs, "StatefulSet", "redis")
    if scorer is not None:
        match = re.match(r"^rediss?://(?:[^@/]*@)?([^:/]+):(\d+)", scorer.redis_url)
        if redis_set is None:  # an external Redis, or none at all
            problems += external_redis.problems(docs, workloads["scorer"], scorer.redis_url)
        elif not match:
            problems.append("scorer REDIS_URL does not name host:port")
        else:
            _service_for(docs, match.group(1), int(match.group(2)), redis_set, "redis", problems,
                         "scorer REDIS_URL", headless=True)
    if redis_container is not None:
        for name in sorted(_secret_refs(redis_container)):
            if name not in secrets:
                problems.append(f"redis: Secret {name} is neither rendered nor documented as external")

    # NetworkPolicies and ServiceMonitors name ports: those must exist where they point.
    pods = [w for w in _kind(docs, "Deployment") + _kind(docs, "StatefulSet")]
    for policy in _kind(docs, "NetworkPolicy"):
        selected = [w for w in pods if _selects(policy["spec"]["podSelector"].get("matchLabels"), _pod_labels(w))]
        if not selected and _policy_component(policy) not in OPTIONAL:
            problems.append(f"NetworkPolicy {policy['metadata']['name']} selects no pods")
        for rule in policy["spec"].get("ingress", []):
            for frm in rule.get("from", []):
                peer = frm.get("podSelector", {}).get("matchLabels")
                if peer and not any(_selects(peer, _pod_labels(w)) for w in pods):
                    problems.append(f"NetworkPolicy {policy['metadata']['name']}: peer {peer} matches no pods")
            for p in rule.get("ports", []):
                for w in selected:
                    c = w["spec"]["template"]["spec"]["containers"][0]
                    if isinstance(p["port"], str) and _port(c, p["port"]) is None:
                        problems.append(f"NetworkPolicy {policy['metadata']['name']}: port {p['port']} not on {c['name']}")
        for rule in policy["spec"].get("egress", []):
            for to in rule.get("to", []):
                peer = to.get("podSelector", {}).get("matchLabels")
                if peer is None or "namespaceSelector" in to:
                    continue  # another namespace's pods (DNS) or addresses
                targets = [w for w in pods if _selects(peer, _pod_labels(w))]
                if not targets:
                    problems.append(f"NetworkPolicy {policy['metadata']['name']}: egress peer {peer} matches no pods")
                for p in rule.get("ports", []):
                    for w in targets:
                        c = w["spec"]["template"]["spec"]["containers"][0]
                        if isinstance(p["port"], str) and _port(c, p["port"]) is None:
                            problems.append(f"NetworkPolicy {policy['metadata']['name']}: egress port {p['port']} "
                                            f"not on {c['name']}")
    _check_gateway(docs, environment, default_ports, secrets, set(external_config_maps), problems)
    # Monitors rendered: each Service with a metrics port has exactly one; an OPTIONAL component's may select none.
    monitors, services = _kind(docs, "ServiceMonitor"), _kind(docs, "Service")
    selected = {m["metadata"]["name"]: [s for s in services if _selects(m["spec"]["selector"].get("matchLabels"),
                                                                         s["metadata"].get("labels", {}))] for m in monitors}
    for service in (s for s in services if monitors and "metrics" in {p["name"] for p in s["spec"]["ports"]}):
        if sum(service in chosen for chosen in selected.values()) != 1:
            problems.append(f"Service {service['metadata']['name']}: its metrics port is not in exactly one ServiceMonitor")
    for name, chosen, monitor in ((m["metadata"]["name"], selected[m["metadata"]["name"]], m) for m in monitors):
        if len(chosen) > 1 or not (chosen or any(o in name for o in OPTIONAL)):
            problems.append(f"ServiceMonitor {name} selects {len(chosen)} Services, not one")
        problems += [f"ServiceMonitor {name}: port {e['port']} on no Service" for e in monitor["spec"]["endpoints"]
                     if chosen and e["port"] not in {p["name"] for s in chosen for p in s["spec"]["ports"]}]
    return problems
