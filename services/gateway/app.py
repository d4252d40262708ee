"""The OpenAI-compatible front door: POST /v1/chat/completions and /v1/completions, GET /v1/models.

A request whose `model` is an alias (default `auto`) is routed by the router over gRPC, among the
pool models of the upstreams file; a pool model is forwarded as it is. Answers carry
`x-tagrouter-model`, `x-tagrouter-estimated-cost-usd` (routed requests), `x-tagrouter-degraded`
(and `x-tagrouter-degraded-reason`) and, with a session, `x-tagrouter-session-kept`.
"""
from __future__ import annotations

import contextlib
import logging
import math

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common import metrics
from services.common.channels import open_channel
from services.common.security import channel_credentials
from services.common.settings import GatewaySettings
from services.gateway import forward, upstreams
from tagrouter.core import openai_request
from tagrouter.core.limits import InvalidRequest, shown
from tagrouter.router.v1 import router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)
ROUTER_SERVICE = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name

TRACE_HEADERS = ("traceparent", "tracestate")
UNKNOWN_MODEL = "unknown"  # the requests metric's model label for a name neither alias nor pool model


class Gateway:
    """The gateway's state: its upstreams, the router stub and the pooled upstream client."""

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.upstreams = upstreams.load(settings.upstreams_file)
        self.channel = self.router = self.http = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        s = self.settings  # its own certificate too: a router that asks for client certificates verifies it
        credentials = channel_credentials(s.tls_ca_file, s.tls_cert_file, s.tls_key_file) if s.tls_ca_file else None
        self.channel = open_channel(self.settings.router_addr, credentials)
        self.router = router_pb2_grpc.RouterServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.http = forward.client(self.settings.upstream_timeout_s)
        log.info("gateway: router %s, pool %s, aliases %s", self.settings.router_addr,
                 ", ".join(self.upstreams.pool), ", ".join(self.upstreams.aliases))
        try:
            yield
        finally:
            await self.http.aclose()
            await self.channel.close()

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "/chat/completions")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "/completions")

    async def models(self, request: Request) -> Response:
        names = [*self.upstreams.aliases, *self.upstreams.pool]
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "tagrouter"} for n in names]})

    async def ready(self, request: Request) -> Response:
        """Readiness: the router answers SERVING (liveness is /healthz, always 200 while the loop runs)."""
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(service=ROUTER_SERVICE), timeout=1.0)
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            serving = False
        return JSONResponse({"ready": serving}, 200 if serving else 503)

    async def _complete(self, request: Request, path: str) -> Response:
        endpoint = path.removeprefix("/")
        response, model = await self._answer(request, path)
        metrics.GATEWAY_REQUESTS.labels(endpoint, model, str(response.status_code)).inc()
        return response

    async def _answer(self, request: Request, path: str) -> tuple[Response, str]:
        try:
            body = await read_body(request)
            conversation = openai_request.parse(body, completions=path == "/completions")
            check_fields(conversation.payload)
        except InvalidRequest as err:
            return forward.error(400, str(err), "invalid_request_error", param=param_of(str(err))), ""
        requested = conversation.model
        headers: dict[str, str] = {"x-tagrouter-model": requested, "x-tagrouter-degraded": "false"}
        settle = None
        if requested in self.upstreams.aliases or (self.settings.tenancy and requested in self.upstreams.models):
            try:
                model, headers, settle = await self._route(request, conversation)
            except InvalidRequest as err:  # Route's `query` is the body's last user message (or prompt)
                param = param_of(str(err))
                param = ("prompt" if path == "/completions" else "messages") if param == "query" else param
                return forward.error(400, str(err), "invalid_request_error", param=param), ""
            except TenantRefused as err:
                return forward.error(err.status, err.message, err.kind), requested
        elif requested in self.upstreams.models:
            model = requested
        else:
            names = ", ".join([*self.upstreams.aliases, *self.upstreams.pool])
            # labelled UNKNOWN_MODEL: a metric label per name a caller makes up would grow without end
            return forward.error(404, f"The model {shown(requested)} does not exist; use one of {names}",
                                 "invalid_request_error", param="model", code="model_not_found"), UNKNOWN_MODEL
        upstream = self.upstreams.models[model]
        return await forward.forward(self.http, path, model, upstream, conversation.payload, headers, settle), model

    async def _route(self, request: Request, conversation) -> tuple[str, dict[str, str], object]:
        """Route through the router; when it cannot answer, the default model, degraded. With tenancy
        on, as the caller's tenant (its bearer token; an explicit model is routed among itself alone),
        answering also the call that settles the reservation from the answer's `usage`."""
        explicit = conversation.model not in self.upstreams.aliases
        route = router_pb2.RouteRequest(**conversation.route_fields(),
                                        candidate_models=[conversation.model] if explicit else self.upstreams.pool,
                                        session_id=openai_request.session_id(request.headers.get("x-session-id"),
                                                                             conversation))
        if (value := request.headers.get("x-tagrouter-cost-weight")) is not None:
            route.cost_weight = header_number("x-tagrouter-cost-weight", value)
        auth = (("authorization", request.headers.get("authorization", "")),) if self.settings.tenancy else ()
        # An HTTP caller's W3C trace context goes on to Route, so its trace holds the routing too.
        trace = tuple((h, v) for h in TRACE_HEADERS if (v := request.headers.get(h)))
        try:
            reply = await self.router.Route(route, timeout=self.settings.route_timeout_s,
                                            metadata=auth + trace or None)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidRequest(err.details()) from None
            if err.code().name in TENANT_HTTP:
                raise TenantRefused(*TENANT_HTTP[err.code().name], err.details()) from None
            if self.settings.tenancy:  # fail closed: no tenant check, no answer
                raise TenantRefused(503, "api_error", f"the router cannot check the tenant ({err.code().name})") from None
            model = self.upstreams.default_model
            log.warning("Route failed (%s): answering with %s", err.code().name, model)
            return model, {"x-tagrouter-model": model, "x-tagrouter-degraded": "true",
                           "x-tagrouter-degraded-reason": f"router unavailable ({err.code().name})"}, None
        settle = None
        if reply.request_id:
            async def settle(usage: dict | None) -> None:
                await self._settle(reply.request_id, usage, auth, reply.estimated_cost_usd)
        return reply.model, openai_request.answer_headers(reply, session=bool(route.session_id)), settle

    async def _settle(self, request_id: str, usage: dict | None, auth, estimate_usd: float) -> None:
        """Settle a tenant's reservation from the upstream's `usage`, or at Route's estimate when an answer
        came without it (a stream the caller left, an upstream that reports none: left to expire, the
        answer was free); a failure is logged (the reservation then expires)."""
        usage = usage or {}
        tokens = {k: usage[k] for k in ("prompt_tokens", "completion_tokens")
                  if isinstance(usage.get(k), int) and usage[k] >= 0}
        if "completion_tokens" in tokens:
            settle = router_pb2.SettleRequest(request_id=request_id, output_tokens=tokens["completion_tokens"])
            if "prompt_tokens" in tokens:
                settle.input_tokens = tokens["prompt_tokens"]
        else:
            settle = router_pb2.SettleRequest(request_id=request_id, cost_usd=estimate_usd)
        try:
            await self.router.Settle(settle, timeout=self.settings.route_timeout_s, metadata=auth or None)
        except grpc.aio.AioRpcError as err:
            log.warning("Settle %s failed (%s): its reservation will expire", request_id, err.code().name)


TENANT_HTTP = {"UNAUTHENTICATED": (401, "authentication_error"), "PERMISSION_DENIED": (403, "permission_error"),
               "RESOURCE_EXHAUSTED": (429, "rate_limit_error")}


class TenantRefused(Exception):
    """The router refused the caller's tenant: unknown token, a model outside its pool, a cap reached."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


async def read_body(request: Request) -> bytes:
    """The request body, refused past openai_request.MAX_BODY_BYTES without reading it all."""
    limit = openai_request.MAX_BODY_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidRequest(f"the request body has {declared} bytes, at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InvalidRequest(f"the request body has more than {limit} bytes")
    return bytes(body)


def check_fields(payload: dict) -> None:
    """The fields the gateway itself reads, beyond what openai_request checks."""
    if not isinstance(payload.get("stream", False), bool):
        raise InvalidRequest("'stream' must be true or false")
    if not isinstance(payload.get("user", ""), str):
        raise InvalidRequest("'user' must be a string")
    if not isinstance(payload.get("stream_options") or {}, dict):
        raise InvalidRequest("'stream_options' must be an object")


def header_number(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise InvalidRequest(f"header {name} must be a finite number >= 0, not {value!r}")
    return number


def param_of(message: str) -> str | None:
    """The field an InvalidRequest message names first ('model', messages[2], session_id...)."""
    for token in message.replace("'", " ").replace(":", " ").split():
        if token.split("[")[0] in ("model", "messages", "prompt", "stream", "user", "stream_options",
                                   "session_id", "query", "x-tagrouter-cost-weight"):
            return token.rstrip(".,")
    return None


async def http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (an unknown path, a wrong method) as OpenAI-style JSON errors."""
    message = {404: f"no route {request.url.path} (this gateway serves POST /v1/chat/completions, "
                    "POST /v1/completions, GET /v1/models)",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return forward.error(exc.status_code, message, "invalid_request_error", headers=exc.headers)


class InFlightLimit:
    """At most `limit` API requests (/v1/...) in flight; past it a 503 at once, OpenAI-style. Health
    checks are never counted. (uvicorn's limit_concurrency counts connections, idle ones too: a few
    silent sockets made every answer a 503, /healthz included, and a liveness probe restarted the pod.)"""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            refusal = forward.error(503, f"the gateway has {self.limit} requests in flight "
                                         "(TAGROUTER_MAX_CONCURRENT_RPCS): retry", "api_error", code="overloaded")
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def create(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)
    app = Starlette(routes=[
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/healthz", lambda request: JSONResponse({"live": True}), methods=["GET"]),
        Route("/readyz", gateway.ready, methods=["GET"]),
    ], lifespan=gateway.lifespan, exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    return app
