"""Configuration: environment variables read once into frozen settings objects. Every variable a
service reads is named here and only here, so the docs, the Kubernetes manifests and the code have
one list to agree on (`ENVIRONMENT`)."""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.common import redis_url
from services.common.env import ConfigError, Env, check_address, check_ca_bundle, check_folder_with, check_key_pair
from tagrouter import data
from tagrouter.core.tagging import TAG_MIN_SCORE, TAGS_PER_LEVEL, TOPIC_MIN_SCORE

DEFAULT_MODEL_DIR = data.DEFAULT_MODEL_DIR
DEFAULT_VOCAB_DIR = data.VOCABULARY_DIR
DEFAULT_WEIGHTS_FILE = data.STARTER_WEIGHTS_FILE

DEFAULT_PORTS = {"router": 50051, "scorer": 50052, "tagger": 50053, "gateway": 8080}
DEFAULT_EXTPROC_PORT = 50054  # the router's Envoy external processor
# The tagger's onnxruntime threads: two where the process may use two CPUs; with every service on one 2-core
# machine the second pays for itself under load and for a lone query (docs/BENCHMARKS.md, "Fourth step").
# CPU affinity, not a cgroup quota: a one-CPU pod sets 1.
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
SERVING_THREADS = min(2, _CPUS)

# name -> (services that read it, meaning). The README's configuration table is this table.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "TAGROUTER_HOST": ("all", "address to bind (default 127.0.0.1; [::] in containers)"),
    "TAGROUTER_PORT": ("all", "gRPC port (default router 50051, scorer 50052, tagger 50053); the gateway's HTTP port (default 8080)"),
    "TAGROUTER_REFLECTION": ("all", "serve gRPC reflection (default true)"),
    "TAGROUTER_GRACE_SECONDS": ("all", "drain time on SIGTERM before in-flight calls are cancelled (default 5)"),
    "TAGROUTER_LOG_LEVEL": ("all", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    "TAGROUTER_METRICS_PORT": ("all", "Prometheus /metrics port (default 9090; 0 disables)"),
    "TAGROUTER_METRICS_HOST": ("all", "address the /metrics server binds (default TAGROUTER_HOST)"),
    "TAGROUTER_MAX_CONCURRENT_RPCS": ("all", "unary calls in flight (Score, Route, Tag, ...) before new ones get RESOURCE_EXHAUSTED; health checks and admin RPCs are not counted (default 512)"),
    "TAGROUTER_MAX_ADMIN_RPCS": ("all", "state-changing calls in flight (LoadWeights, Feedback; the router's TenantService) before new ones get RESOURCE_EXHAUSTED (default 64)"),
    "TAGROUTER_MAX_STREAMS": ("all", "open streams (WatchWeights, TagStream, health Watch, reflection) before new ones get RESOURCE_EXHAUSTED (default 1024)"),
    "TAGROUTER_MAX_STREAMS_PER_PEER": ("all", "open streams from one client IP address before new ones get RESOURCE_EXHAUSTED (default 64)"),
    "TAGROUTER_TLS_CERT_FILE": ("all", "PEM certificate: serve TLS (with TAGROUTER_TLS_KEY_FILE); the router also presents it to its downstreams, the gateway to the router"),
    "TAGROUTER_TLS_KEY_FILE": ("all", "PEM private key of TAGROUTER_TLS_CERT_FILE"),
    "TAGROUTER_TLS_CLIENT_CA_FILE": ("all", "PEM CA: require client certificates signed by it (mutual TLS)"),
    "TAGROUTER_TLS_CA_FILE": ("router, gateway", "PEM CA: call the tagger and scorer (the gateway: the router) over TLS, verifying them with it"),
    "TAGROUTER_ADMIN_TOKEN": ("scorer, router", "when set, state-changing RPCs (LoadWeights, Feedback; the router's TenantService) need 'authorization: Bearer <token>'; the scorer refuses to start without it on a non-loopback TAGROUTER_HOST, the router's TenantService then answers only on a loopback address"),
    "TAGROUTER_ALLOW_OPEN_ADMIN": ("scorer", "true: start without TAGROUTER_ADMIN_TOKEN on a non-loopback address, LoadWeights and Feedback open to every client (default false)"),
    "TAGROUTER_MODEL_DIR": ("tagger", "folder with model.onnx and tokenizer.json (default build/model under the working directory)"),
    "TAGROUTER_VOCAB_DIR": ("tagger", "folder with the tag vocabulary (default the vocabulary packaged in tagrouter/data)"),
    "TAGROUTER_TAGGER_HEADS": ("tagger, scorer", "true: tag with the trained heads in the encoder graph, one calibrated tag per level or none (docs/TAGS.md), instead of the nearest prototypes; the scorer's default weights are then the starter weights fitted on the heads' tags (default false; set it for both)"),
    "TAGROUTER_TAGS_PER_LEVEL": ("tagger", "tags kept per level by the prototype tagger (a trained head gives one; default 2)"),
    "TAGROUTER_TAG_MIN_SCORE": ("tagger", "cosine below which a prototype tag is dropped (levels without a trained head, whose thresholds are in heads.json; default 0.15)"),
    "TAGROUTER_TOPIC_MIN_SCORE": ("tagger", "cosine below which a prototype topic tag is dropped (without a trained topic head; default 0.4)"),
    "TAGROUTER_INTRA_OP_THREADS": ("tagger", "onnxruntime threads per encoder call, a lone query or a batch; they spin only during a call (default 2, or 1 on a one-CPU machine: give a one-CPU pod 1)"),
    "TAGROUTER_TAG_CACHE_SIZE": ("tagger", "queries whose tags are kept in the exact-match cache (default 10000; 0 turns it off)"),
    "REDIS_URL": ("scorer", "Redis holding the weights (required): redis://:PASSWORD@host:6379/0 (rediss:// for TLS), redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB] or redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...] (rediss+... for TLS)"),
    "TAGROUTER_REDIS_CA_FILE": ("scorer, router", "PEM CA bundle verifying the Redis servers (and sentinels) of the TLS URLs (rediss://, rediss+sentinel://, rediss+cluster://) in REDIS_URL, TAGROUTER_SESSION_REDIS_URL and TAGROUTER_TENANT_REDIS_URL, e.g. a private CA's; checked at start-up, and one of those URLs must use TLS (default unset: the system's CAs)"),
    "TAGROUTER_REDIS_WAIT_REPLICAS": ("scorer", "replicas that must confirm a Feedback (Redis WAIT) before it is acknowledged, at most those connected to the primary; 0 turns WAIT off (default 1)"),
    "TAGROUTER_REDIS_WAIT_TIMEOUT_MS": ("scorer", "bound of that WAIT, 1 to 1500 (below the 2 s socket timeout): past it Feedback answers UNAVAILABLE (resend with the same feedback_id) and tagrouter_feedback_unreplicated_total counts it (default 500)"),
    "TAGROUTER_WATCH_DELTAS": ("scorer", "WatchWeights sends only the changed counts after the first whole weights; false = the whole weights at every change (default true)"),
    "TAGROUTER_WEIGHTS_FILE": ("scorer", "weights loaded when Redis holds none (default the starter weights, fitted on the tags of the tagger TAGROUTER_TAGGER_HEADS names)"),
    "TAGGER_ADDR": ("router", "tagger address host:port (required)"),
    "FEEDBACK_TAGGER_ADDR": ("scorer", "tagger address host:port (optional): lets Feedback take a query instead of its tags"),
    "SCORER_ADDR": ("router", "scorer address host:port (required)"),
    "TAGROUTER_TAGGER_TIMEOUT_MS": ("router", "deadline of each Tag call (default 250)"),
    "TAGROUTER_TAG_STREAMS": ("router", "long-lived TagStream calls the router tags over, in turn (default 4; 0: a Tag call per query; with tracing on, Tag calls carry the trace)"),
    "TAGROUTER_SCORER_TIMEOUT_MS": ("router", "deadline of each Score call (default 150)"),
    "TAGROUTER_SCORE_IN_ROUTER": ("router", "score from a copy of the weights that the scorer streams (WatchWeights) instead of a Score call per Route; false = always call Score (default true)"),
    "TAGROUTER_DEFAULT_MODEL": ("router", "model answered when routing cannot decide (default gpt4_1106_preview)"),
    "TAGROUTER_COST_WEIGHT": ("router", "cost knob lambda when a request sets none; set, it overrides the weights' recommended operating point (default unset)"),
    "TAGROUTER_QUALITY_MARGIN": ("router", "quality margin theta toward the strongest model when a request sets none; set, it overrides the weights' recommended operating point (default unset)"),
    "TAGROUTER_EXTPROC_PORT": ("router", "port of the Envoy external processor (envoy.service.ext_proc.v3), served by the router process with Route's TLS and health (default 50054; 0 turns it off)"),
    "TAGROUTER_EXTPROC_ALIASES": ("router", "comma-separated model names that the external processor routes, rewriting the body's model (default auto); a pool model passes unchanged, any other name gets 400"),
    "TAGROUTER_SESSION_REDIS_URL": ("router", "Redis holding sticky sessions (session id -> the model that answered it last), shared by every replica: redis://:PASSWORD@host:6379/1, redis+sentinel:// or redis+cluster:// (rediss... for TLS), as REDIS_URL (default unset: session_id is ignored)"),
    "TAGROUTER_SESSION_MARGIN": ("router", "utility (score units) by which a session's new choice must beat the model that answered it last to switch (default 0.05)"),
    "TAGROUTER_SESSION_TTL_SECONDS": ("router", "how long a session is remembered after its last turn (default 3600)"),
    "TAGROUTER_TENANT_REDIS_URL": ("router, scorer", "Redis holding tenants and their spend (redis://, redis+sentinel:// or redis+cluster://, as REDIS_URL): turns tenancy on, Route then needs a tenant's bearer token; in the scorer, lets Feedback with route_request_id settle (default unset: no tenants)"),
    "TAGROUTER_TENANT_RESERVATION_SECONDS": ("router", "how long a Route's budget reservation waits for its settlement before it is released (default 600)"),
    "TAGROUTER_TENANCY": ("gateway", "true: every request is routed as the caller's tenant (its bearer token goes to Route, explicit models too, and the answer's usage settles it); the router must have TAGROUTER_TENANT_REDIS_URL (default false)"),
    "ROUTER_ADDR": ("gateway", "router address host:port (required)"),
    "TAGROUTER_UPSTREAMS": ("gateway", "JSON or YAML file: pool model -> base_url, model, api_key_env (required; `--upstreams`)"),
    "TAGROUTER_ROUTE_TIMEOUT_MS": ("gateway", "deadline of each Route call; past it the gateway answers with its default model, degraded (default 1000)"),
    "TAGROUTER_UPSTREAM_TIMEOUT_SECONDS": ("gateway", "time an upstream LLM may take to start answering, and between two streamed chunks, before a 504 (default 120)"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("all", "OTLP gRPC collector, e.g. http://otel-collector:4317: turns tracing on (default unset: tracing off, nothing installed)"),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("all", "as OTEL_EXPORTER_OTLP_ENDPOINT, for traces only (takes precedence)"),
    "OTEL_SERVICE_NAME": ("all", "service.name of the spans (default tagrouter-<service>)"),
    "OTEL_TRACES_SAMPLER": ("all", "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio (default parentbased_always_on)"),
    "OTEL_TRACES_SAMPLER_ARG": ("all", "the ratio of the traceidratio samplers, 0 to 1 (default 1)"),
    "OTEL_SDK_DISABLED": ("all", "true: tracing off even with an endpoint (default false)"),
}


ADMIN_SERVICES = ("scorer",)  # the services with state-changing RPCs (services/common/security.py)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (brackets allowed); anything else, [::] and 0.0.0.0 included, is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redis_url(name: str, value: str) -> str | None:
    """An optional Redis URL of REDIS_URL's three forms (None when empty); errors never show the password."""
    try:
        return redis_url.parse(value) and value if value else None
    except redis_url.RedisUrlError as err:
        raise ConfigError(f"{name} {err}") from None


def _redis_ca_file(e: Env, *urls: str | None) -> Path | None:
    """TAGROUTER_REDIS_CA_FILE: a PEM bundle that loads as CA certificates, for at least one TLS URL."""
    path = check_ca_bundle("TAGROUTER_REDIS_CA_FILE", e.path("TAGROUTER_REDIS_CA_FILE"))
    if path is None:
        return None
    if not any(url and redis_url.parse(url).tls for url in urls):
        raise ConfigError("TAGROUTER_REDIS_CA_FILE is set, but none of this service's Redis URLs uses TLS (rediss...)")
    return path


@dataclass(frozen=True)
class ServerSettings:
    """What every service's gRPC server needs."""

    service: str
    host: str
    port: int
    reflection: bool
    grace_seconds: float
    log_level: str
    metrics_port: int
    max_concurrent_rpcs: int
    tls_cert_file: Path | None
    tls_key_file: Path | None
    tls_client_ca_file: Path | None
    admin_token: str | None = field(repr=False)  # a secret: never logged
    metrics_host: str = "127.0.0.1"
    max_admin_rpcs: int = 64
    max_streams: int = 1024
    max_streams_per_peer: int = 64
    allow_open_admin: bool = False

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServerSettings:
        e = Env(env)
        level = e.str("TAGROUTER_LOG_LEVEL", "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"TAGROUTER_LOG_LEVEL={level!r} is not DEBUG, INFO, WARNING or ERROR")
        host = e.str("TAGROUTER_HOST", "127.0.0.1")
        return cls(
            service=service,
            host=host,
            port=e.int("TAGROUTER_PORT", DEFAULT_PORTS[service], 0, 65535),
            reflection=e.bool("TAGROUTER_REFLECTION", True),
            grace_seconds=e.float("TAGROUTER_GRACE_SECONDS", 5.0, 0.0, 300.0),
            log_level=level,
            metrics_port=e.int("TAGROUTER_METRICS_PORT", 9090, 0, 65535),
            max_concurrent_rpcs=e.int("TAGROUTER_MAX_CONCURRENT_RPCS", 512, 1, 1_000_000),
            tls_cert_file=e.path("TAGROUTER_TLS_CERT_FILE"),
            tls_key_file=e.path("TAGROUTER_TLS_KEY_FILE"),
            tls_client_ca_file=e.path("TAGROUTER_TLS_CLIENT_CA_FILE"),
            admin_token=e.str("TAGROUTER_ADMIN_TOKEN", "") or None,
            metrics_host=e.str("TAGROUTER_METRICS_HOST", host),
            max_admin_rpcs=e.int("TAGROUTER_MAX_ADMIN_RPCS", 64, 1, 1_000_000),
            max_streams=e.int("TAGROUTER_MAX_STREAMS", 1024, 1, 1_000_000),
            max_streams_per_peer=e.int("TAGROUTER_MAX_STREAMS_PER_PEER", 64, 1, 1_000_000),
            allow_open_admin=e.bool("TAGROUTER_ALLOW_OPEN_ADMIN", False),
        ).checked()

    def checked(self) -> ServerSettings:
        check_key_pair(self.tls_cert_file, self.tls_key_file)
        check_ca_bundle("TAGROUTER_TLS_CLIENT_CA_FILE", self.tls_client_ca_file)
        if self.admin_token and not (self.admin_token.isascii() and self.admin_token.isprintable()):
            raise ConfigError("TAGROUTER_ADMIN_TOKEN must be printable ASCII: gRPC metadata cannot carry it otherwise")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ConfigError("TAGROUTER_TLS_CLIENT_CA_FILE needs TAGROUTER_TLS_CERT_FILE and TAGROUTER_TLS_KEY_FILE")
        if (self.service in ADMIN_SERVICES and not self.admin_token and not self.allow_open_admin
                and not is_loopback(self.host)):
            raise ConfigError(f"TAGROUTER_ADMIN_TOKEN is not set and TAGROUTER_HOST={self.host} is not a loopback "
                              "address: LoadWeights and Feedback would be open to every client that reaches it. "
                              "Set the token (in Kubernetes, the admin Secret), or TAGROUTER_ALLOW_OPEN_ADMIN=true "
                              "to accept that")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    def with_port(self, port: int | None) -> ServerSettings:
        return self if port is None else replace(self, port=port)

    @property
    def bind_address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TaggerSettings:
    model_dir: Path
    vocab_dir: Path
    tags_per_level: int
    min_score: float
    topic_min_score: float
    intra_op_threads: int
    tag_cache_size: int = 10_000
    use_heads: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaggerSettings:
        e = Env(env)
        return cls(
            model_dir=check_folder_with("TAGROUTER_MODEL_DIR", Path(e.str("TAGROUTER_MODEL_DIR", str(DEFAULT_MODEL_DIR))),
                                        "model.onnx", "run `make model`"),
            vocab_dir=check_folder_with("TAGROUTER_VOCAB_DIR", Path(e.str("TAGROUTER_VOCAB_DIR", str(DEFAULT_VOCAB_DIR))),
                                        "tags.json", "a vocabulary folder, as `tagrouter fit` writes"),
            tags_per_level=e.int("TAGROUTER_TAGS_PER_LEVEL", TAGS_PER_LEVEL, 1, 16),
            min_score=e.float("TAGROUTER_TAG_MIN_SCORE", TAG_MIN_SCORE, -1.0, 1.0),
            topic_min_score=e.float("TAGROUTER_TOPIC_MIN_SCORE", TOPIC_MIN_SCORE, -1.0, 1.0),
            intra_op_threads=e.int("TAGROUTER_INTRA_OP_THREADS", SERVING_THREADS, 1, 64),
            tag_cache_size=e.int("TAGROUTER_TAG_CACHE_SIZE", 10_000, 0, 10_000_000),
            use_heads=e.bool("TAGROUTER_TAGGER_HEADS", False))


@dataclass(frozen=True)
class ScorerSettings:
    redis_url: str = field(repr=False)  # may hold a password: never logged
    weights_file: Path
    tagger_addr: str | None = None  # Feedback by query needs a tagger; by tags it does not
    redis_wait_replicas: int = 1
    redis_wait_timeout_ms: int = 500
    watch_deltas: bool = True
    tenant_redis_url: str | None = field(default=None, repr=False)
    redis_ca_file: Path | None = None
    tagger_heads: bool = False  # the tagger it serves tags with the trained heads: its starter weights

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScorerSettings:
        e = Env(env)
        url = _redis_url("REDIS_URL", e.str("REDIS_URL"))
        tagger = e.str("FEEDBACK_TAGGER_ADDR", "-")
        tenant_url = _tenant_redis_url(e)
        heads = e.bool("TAGROUTER_TAGGER_HEADS", False)
        weights = e.path("TAGROUTER_WEIGHTS_FILE") or data.starter_weights(heads)
        return cls(redis_url=url, weights_file=weights,
                   tagger_addr=None if tagger == "-" else check_address("FEEDBACK_TAGGER_ADDR", tagger),
                   redis_wait_replicas=e.int("TAGROUTER_REDIS_WAIT_REPLICAS", 1, 0, 16),
                   redis_wait_timeout_ms=e.int("TAGROUTER_REDIS_WAIT_TIMEOUT_MS", 500, 1, 1500),
                   watch_deltas=e.bool("TAGROUTER_WATCH_DELTAS", True), tenant_redis_url=tenant_url,
                   redis_ca_file=_redis_ca_file(e, url, tenant_url), tagger_heads=heads)


@dataclass(frozen=True)
class RouterSettings:
    tagger_addr: str
    scorer_addr: str
    tagger_timeout_s: float
    scorer_timeout_s: float
    default_model: str
    # None (unset): the weights' recommended operating point applies (tagrouter/core/operating.py)
    default_cost_weight: float | None
    score_in_router: bool = True
    default_quality_margin: float | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    session_redis_url: str | None = field(default=None, repr=False)  # may hold a password: never logged
    session_margin: float = 0.05
    session_ttl_s: int = 3600
    extproc_port: int = DEFAULT_EXTPROC_PORT  # 0: no external processor
    extproc_aliases: tuple[str, ...] = ("auto",)
    tenant_redis_url: str | None = field(default=None, repr=False)  # None: tenancy off
    reservation_ttl_s: int = 600
    redis_ca_file: Path | None = None
    tag_streams: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RouterSettings:
        e = Env(env)
        session_url = _redis_url("TAGROUTER_SESSION_REDIS_URL", e.str("TAGROUTER_SESSION_REDIS_URL", ""))
        tenant_url = _tenant_redis_url(e)
        return cls(
            tagger_addr=check_address("TAGGER_ADDR", e.str("TAGGER_ADDR")),
            scorer_addr=check_address("SCORER_ADDR", e.str("SCORER_ADDR")),
            tagger_timeout_s=e.int("TAGROUTER_TAGGER_TIMEOUT_MS", 250, 1, 60_000) / 1000,
            scorer_timeout_s=e.int("TAGROUTER_SCORER_TIMEOUT_MS", 150, 1, 60_000) / 1000,
            default_model=e.str("TAGROUTER_DEFAULT_MODEL", "gpt4_1106_preview"),
            default_cost_weight=e.float("TAGROUTER_COST_WEIGHT", None, 0.0, 1e6),
            score_in_router=e.bool("TAGROUTER_SCORE_IN_ROUTER", True),
            default_quality_margin=e.float("TAGROUTER_QUALITY_MARGIN", None, 0.0, 1e6),
            tls_ca_file=check_ca_bundle("TAGROUTER_TLS_CA_FILE", e.path("TAGROUTER_TLS_CA_FILE")),
            tls_cert_file=e.path("TAGROUTER_TLS_CERT_FILE"),
            tls_key_file=e.path("TAGROUTER_TLS_KEY_FILE"),
            session_redis_url=session_url,
            session_margin=e.float("TAGROUTER_SESSION_MARGIN", 0.05, 0.0, 1e6),
            session_ttl_s=e.int("TAGROUTER_SESSION_TTL_SECONDS", 3600, 1, 366 * 86400),
            extproc_port=e.int("TAGROUTER_EXTPROC_PORT", DEFAULT_EXTPROC_PORT, 0, 65535),
            extproc_aliases=_names("TAGROUTER_EXTPROC_ALIASES", e.str("TAGROUTER_EXTPROC_ALIASES", "auto")),
            tenant_redis_url=tenant_url,
            reservation_ttl_s=e.int("TAGROUTER_TENANT_RESERVATION_SECONDS", 600, 1, 86400),
            tag_streams=e.int("TAGROUTER_TAG_STREAMS", 4, 0, 64),
            redis_ca_file=_redis_ca_file(e, session_url, tenant_url),
        )


def _tenant_redis_url(e: Env) -> str | None:
    return _redis_url("TAGROUTER_TENANT_REDIS_URL", e.str("TAGROUTER_TENANT_REDIS_URL", ""))


def _names(name: str, value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise ConfigError(f"{name}={value!r} names no model")
    return names


@dataclass(frozen=True)
class GatewaySettings:
    """The OpenAI-compatible gateway (services/gateway): its router and its upstreams file."""

    router_addr: str
    upstreams_file: Path
    route_timeout_s: float = 1.0
    upstream_timeout_s: float = 120.0
    tls_ca_file: Path | None = None
    tenancy: bool = False
    tls_cert_file: Path | None = None  # its own certificate, presented to the router too (mutual TLS)
    tls_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        e = Env(env)
        upstreams = e.str("TAGROUTER_UPSTREAMS")
        if not Path(upstreams).is_file():
            raise ConfigError(f"TAGROUTER_UPSTREAMS={upstreams!r}: no such file")
        return cls(router_addr=check_address("ROUTER_ADDR", e.str("ROUTER_ADDR")), upstreams_file=Path(upstreams),
                   route_timeout_s=e.int("TAGROUTER_ROUTE_TIMEOUT_MS", 1000, 1, 60_000) / 1000,
                   upstream_timeout_s=e.float("TAGROUTER_UPSTREAM_TIMEOUT_SECONDS", 120.0, 0.001, 3600.0),
                   tls_ca_file=check_ca_bundle("TAGROUTER_TLS_CA_FILE", e.path("TAGROUTER_TLS_CA_FILE")),
                   tenancy=e.bool("TAGROUTER_TENANCY", False), tls_cert_file=e.path("TAGROUTER_TLS_CERT_FILE"),
                   tls_key_file=e.path("TAGROUTER_TLS_KEY_FILE"))
