"""A real Envoy on loopback in front of OpenAI-compatible upstreams, for the tests and the bench.

`envoy_config` writes the configuration the docs describe (docs/ENVOY.md): a listener whose
ext_proc filter sends each request to the router's external processor, one route per pool model
matching `x-tagrouter-model`, each to that model's upstream; or a listener straight to one
upstream (the bench's baseline). `Envoy` runs the binary (build/tools/bin/envoy, `make
envoy-tools`, or $TAGROUTER_ENVOY) until the context ends.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tagrouter.stack.embedded_redis import die_with_parent, free_port

ENVOY_ENV = "TAGROUTER_ENVOY"
# Where `make envoy-tools` installs it: the checkout's build/tools, wherever the caller runs from.
DEFAULT_ENVOY = Path(__file__).resolve().parents[2] / "build" / "tools" / "bin" / "envoy"
MODEL_HEADER = "x-tagrouter-model"
START_SECONDS = 30.0


def envoy_binary() -> Path | None:
    """$TAGROUTER_ENVOY, else the checkout's build/tools/bin/envoy; None when absent."""
    path = Path(os.environ.get(ENVOY_ENV, "").strip() or DEFAULT_ENVOY)
    return path if path.is_file() and os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class Listener:
    """One Envoy listener: through the router's ext_proc to the model's upstream, or straight to one."""

    port: int
    extproc: str | None = None  # the router's ext_proc host:port; None: no filter
    upstreams: Mapping[str, int] = field(default_factory=dict)  # model -> loopback port (with extproc)
    direct: int | None = None  # without extproc: every request to this port
    failure_mode_allow: bool = False  # router unreachable: pass the request on (True) or answer 500
    fallback: int | None = None  # with failure_mode_allow: where a request without x-tagrouter-model goes
    message_timeout_s: float = 1.0
    extproc_tls: tuple[str, str, str] | None = None  # (CA, client certificate, key): call the router over mTLS


def _cluster(name: str, port: int, http2: bool = False, tls: tuple[str, str, str] | None = None) -> dict:
    cluster = {"name": name, "type": "STATIC", "connect_timeout": "0.25s",
               "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                   "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    if tls is not None:
        ca, cert, key = tls
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}],
                "validation_context": {"trusted_ca": {"filename": ca}}}}}
    return cluster


def _routes(listener: Listener, prefix: str) -> list[dict]:
    if listener.extproc is None:
        return [{"match": {"prefix": "/"}, "route": {"cluster": f"{prefix}_direct", "timeout": "60s"}}]
    routes = [{"match": {"prefix": "/", "headers": [{"name": MODEL_HEADER, "string_match": {"exact": model}}]},
               "route": {"cluster": f"{prefix}_{i}", "timeout": "60s"}}
              for i, model in enumerate(sorted(listener.upstreams))]
    if listener.fallback is not None:
        routes.append({"match": {"prefix": "/"}, "route": {"cluster": f"{prefix}_fallback", "timeout": "60s"}})
    else:
        body = json.dumps({"error": {"message": f"no route: the request has no {MODEL_HEADER} of the pool",
                                     "type": "invalid_request_error", "param": "model", "code": None}})
        routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404, "body": {"inline_string": body}}})
    return routes


def ext_proc_filter(cluster: str, failure_mode_allow: bool, message_timeout_s: float) -> dict:
    """The ext_proc filter as docs/ENVOY.md gives it: request headers and the buffered body to the
    router, response headers back for the x-tagrouter-* headers; response bodies never leave Envoy."""
    return {"name": "envoy.filters.http.ext_proc", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": f"{message_timeout_s}s"},
        "failure_mode_allow": failure_mode_allow,
        "message_timeout": f"{message_timeout_s}s",
        "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SEND",
                            "request_body_mode": "BUFFERED", "response_body_mode": "NONE",
                            "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"}}}


def envoy_config(listeners: list[Listener], admin_port: int) -> dict:
    """Envoy's bootstrap configuration for `listeners` on 127.0.0.1."""
    out_listeners, clusters = [], []
    for n, listener in enumerate(listeners):
        prefix = f"l{n}"
        filters = []
        if listener.extproc is not None:
            clusters.append(_cluster(f"{prefix}_extproc", int(listener.extproc.rsplit(":", 1)[1]), http2=True,
                                     tls=listener.extproc_tls))
            filters.append(ext_proc_filter(f"{prefix}_extproc", listener.failure_mode_allow, listener.message_timeout_s))
            clusters += [_cluster(f"{prefix}_{i}", listener.upstreams[m]) for i, m in enumerate(sorted(listener.upstreams))]
            if listener.fallback is not None:
                clusters.append(_cluster(f"{prefix}_fallback", listener.fallback))
        else:
            clusters.append(_cluster(f"{prefix}_direct", listener.direct))
        filters.append({"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
        out_listeners.append({"name": prefix, "address": {"socket_address": {"address": "127.0.0.1",
                                                                            "port_value": listener.port}},
                              "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                              "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": prefix, "http_filters": filters,
            "route_config": {"virtual_hosts": [{"name": prefix, "domains": ["*"], "routes": _routes(listener, prefix)}]},
        }}]}]})
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {"listeners": out_listeners, "clusters": clusters}}


class Envoy:
    """`with Envoy(binary, [Listener(...)]) as envoy:` a real Envoy, ready (admin /ready) on entry."""

    def __init__(self, binary: Path, listeners: list[Listener], concurrency: int = 1):
        self.binary, self.listeners, self.concurrency = binary, listeners, concurrency
        self.admin_port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="tagrouter-envoy-"))
        self.proc: subprocess.Popen | None = None

    @property
    def log(self) -> str:
        path = self.folder / "envoy.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def start(self) -> Envoy:
        config = self.folder / "envoy.json"
        config.write_text(json.dumps(envoy_config(self.listeners, self.admin_port), indent=1))
        command = [str(self.binary), "-c", str(config), "--disable-hot-restart", "--concurrency",
                   str(self.concurrency), "--log-level", "warning", "--log-path", str(self.folder / "envoy.log")]
        self.proc = subprocess.Popen(die_with_parent(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"envoy not ready within {START_SECONDS:.0f} s:\n{self.log[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
