"""Prometheus metrics: defined once here, served by each process on its own port.

Names say what an operator asks: how many calls, how slow, how often degraded, what it costs.
"""
from __future__ import annotations

import logging
import time

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.common.interceptors import WrappedHandlers, wrap_unary

log = logging.getLogger(__name__)

# Milliseconds matter here: buckets from 0.5 ms to 2.5 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

RPC_REQUESTS = Counter("tagrouter_rpc_requests_total", "RPCs handled, by method and status code",
                       ["service", "method", "code"])
RPC_LATENCY = Histogram("tagrouter_rpc_latency_seconds", "RPC handling time, by method and status code",
                        ["service", "method", "code"], buckets=LATENCY_BUCKETS)
ROUTE_PHASE_LATENCY = Histogram("tagrouter_route_phase_latency_seconds",
                                "Time of each phase of Route: tag, score, decide", ["phase"], buckets=LATENCY_BUCKETS)
ROUTE_DEGRADED = Counter("tagrouter_route_degraded_total", "Route answers decided by a fallback, by reason",
                         ["reason"])
ROUTED = Counter("tagrouter_routed_total", "Queries routed, by chosen model", ["model"])
ROUTED_COST = Counter("tagrouter_routed_estimated_cost_usd_total", "Estimated cost routed, by chosen model",
                      ["model"])
TAGGER_PHASE_LATENCY = Histogram("tagrouter_tagger_phase_latency_seconds",
                                 "Time of each phase of an encoder call: tokenise, encode (onnxruntime), select (tags)",
                                 ["phase"], buckets=LATENCY_BUCKETS)
TAGGER_BATCH_SIZE = Histogram("tagrouter_tagger_batch_size", "Queries per encoder call",
                              buckets=(1, 2, 4, 8, 16, 32, 64))
TAG_CACHE = Counter("tagrouter_tag_cache_total", "Tag cache lookups, by result (hit or miss)", ["result"])
ROUTE_SCORED_FROM_COPY = Counter("tagrouter_route_scored_from_copy_total",
                                 "Route calls scored from the router's copy of the weights (the rest call Score)")
WEIGHTS_COPY_AGE = Gauge("tagrouter_weights_copy_age_seconds",
                         "Seconds since the router's copy of the weights last heard from the scorer")
# Set by the scorer's WatchWeights poll (every 0.05 s while a router watches): 0 while Redis is unreachable.
REDIS_UP = Gauge("tagrouter_scorer_redis_up", "1 when the scorer's last poll of Redis answered, 0 when it failed")
FEEDBACK = Counter("tagrouter_feedback_total", "Feedback outcomes applied, by outcome", ["outcome"])
FEEDBACK_UNREPLICATED = Counter("tagrouter_feedback_unreplicated_total",
                                "Feedback counted on the Redis primary that no replica confirmed within "
                                "TAGROUTER_REDIS_WAIT_TIMEOUT_MS (answered UNAVAILABLE: the client resends)")
WATCH_MESSAGES = Counter("tagrouter_watch_weights_messages_total",
                         "WatchWeights messages a scorer sent, by kind (full, delta)", ["kind"])
WEIGHTS_COPY_LAG = Histogram("tagrouter_weights_copy_lag_seconds",
                             "Upper bound of how late a change reached the router's copy (from the scorer's "
                             "last read of Redis without it to the copy's update; same-clock hosts)",
                             buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0))
EXTPROC_REQUESTS = Counter("tagrouter_extproc_requests_total",
                           "Requests seen by the router's Envoy external processor, by outcome: routed (an alias), "
                           "passed (a pool model), rejected (400), failed (500)", ["outcome"])
ROUTE_SESSIONS = Counter("tagrouter_route_sessions_total",
                         "Routes with a session_id, by result: new, kept, switched, unavailable (Redis failed)",
                         ["result"])
# The gateway (services/gateway): HTTP requests, and the actual cost of answers from their `usage`.
GATEWAY_REQUESTS = Counter("tagrouter_gateway_requests_total", "Gateway requests, by endpoint, model and HTTP status",
                           ["endpoint", "model", "status"])
GATEWAY_TOKENS = Counter("tagrouter_gateway_tokens_total", "Tokens the upstreams reported in `usage`, by model and kind",
                         ["model", "kind"])
GATEWAY_COST = Counter("tagrouter_gateway_actual_cost_usd_total",
                       "Actual cost of answers: their `usage` times the model's prices, by model", ["model"])

# Tenants (services/router/tenants.py): labelled by tenant id for the first MAX_TENANT_LABELS tenants a
# process sees, "other" after that, so the series stay bounded however many tenants there are.
MAX_TENANT_LABELS = 100
TENANT_RESERVED = Counter("tagrouter_tenant_reserved_usd_total", "Estimates reserved by Route, by tenant", ["tenant"])
TENANT_SPEND = Counter("tagrouter_tenant_spend_usd_total", "Actual costs settled, by tenant", ["tenant"])
TENANT_REFUSED = Counter("tagrouter_tenant_refused_total", "Routes refused at a budget cap, by tenant and window",
                         ["tenant", "window"])
TENANT_BUDGET_LEFT = Gauge("tagrouter_tenant_budget_remaining_usd",
                           "What the tightest window leaves after the last reservation, by tenant and window",
                           ["tenant", "window"])
TENANT_BUDGET_ACTIONS = Counter("tagrouter_tenant_budget_actions_total",
                                "Routes whose budget mode acted (paced, downgraded), by tenant", ["tenant", "action"])
_tenant_labels: set[str] = set()


def tenant_label(tenant_id: str) -> str:
    """The tenant's own label while fewer than MAX_TENANT_LABELS are in use, else "other"."""
    if tenant_id in _tenant_labels or len(_tenant_labels) < MAX_TENANT_LABELS:
        _tenant_labels.add(tenant_id)
        return tenant_id
    return "other"


_started_ports: set[int] = set()


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Starts the /metrics HTTP server once per process and port, on `host` (TAGROUTER_METRICS_HOST,
    by default TAGROUTER_HOST: never wider than the gRPC port); 0 disables it."""
    if port == 0 or port in _started_ports:
        return
    try:
        start_http_server(port, addr=host.strip("[]"))  # "[::]" as in TAGROUTER_HOST -> "::"
    except OSError as err:  # metrics are not the critical path: say so and keep serving
        log.error("metrics disabled: cannot bind port %d: %s", port, err)
        return
    _started_ports.add(port)
    log.info("metrics on http://%s:%d/metrics", host, port)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary RPC with the status code it ended with."""

    def __init__(self, service: str):
        self.service = service
        self._wrapped = WrappedHandlers()

    async def intercept_service(self, continuation, handler_call_details):
        full_name = handler_call_details.method
        return self._wrapped.get(full_name, await continuation(handler_call_details),
                                 lambda handler: wrap_unary(handler, self._timing(full_name.rsplit("/", 1)[-1])))

    def _timing(self, method: str):
        # the common outcome's series looked up once (labels() takes a lock and a dict lookup a call)
        ok_count = RPC_REQUESTS.labels(self.service, method, "OK")
        ok_latency = RPC_LATENCY.labels(self.service, method, "OK")

        def wrap(inner):
            async def timed(request, context):
                start = time.perf_counter()
                try:
                    response = await inner(request, context)
                except BaseException:
                    status = context.code()
                    code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                    RPC_REQUESTS.labels(self.service, method, code).inc()
                    RPC_LATENCY.labels(self.service, method, code).observe(time.perf_counter() - start)
                    raise
                ok_count.inc()
                ok_latency.observe(time.perf_counter() - start)
                return response

            return timed

        return wrap
