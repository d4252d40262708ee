"""The Envoy external processor (envoy.service.ext_proc.v3.ExternalProcessor/Process) in the router.

Envoy sends each OpenAI-style request's headers, then its buffered body, then the response's
headers on one stream. A body whose `model` is an alias (TAGROUTER_EXTPROC_ALIASES, default
`auto`) is routed by the router's own Route (same code, same degraded mode, no network hop): its
`model` is rewritten, `content-length` fixed, `x-tagrouter-model` set and the route cache cleared,
so Envoy's route for that model takes it. A body naming a pool model passes unchanged (only
`x-tagrouter-model` is set, to route it); any other name, or a body that is not JSON, is answered
at once with 400 and an OpenAI-style error. The response gets `x-tagrouter-model`,
`x-tagrouter-estimated-cost-usd` and `x-tagrouter-degraded` (with `x-tagrouter-degraded-reason`;
with a session, `x-tagrouter-session-kept`).
Envoy's filter must use `request_body_mode: BUFFERED` (deploy/envoy/README in docs/ENVOY.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.type.v3 import http_status_pb2

from services.common import metrics
from services.common.errors import status_for
from tagrouter.core import openai_request
from tagrouter.core.limits import InvalidRequest, shown
from tagrouter.router.v1 import router_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = ep.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name
MODEL_HEADER = "x-tagrouter-model"
CANDIDATES_HEADER, COST_WEIGHT_HEADER, SESSION_HEADER = "x-tagrouter-candidates", "x-tagrouter-cost-weight", "x-session-id"
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


class NoDeadline:
    """Route's context here: Envoy's message_timeout bounds the call, Route's own timeouts apply; the
    caller's `authorization` header is its metadata (the tenant's bearer token, with tenancy on)."""

    def __init__(self, headers: dict[str, str] | None = None):
        self.headers = headers or {}

    @staticmethod
    def time_remaining() -> None:
        return None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        auth = self.headers.get("authorization")
        return (("authorization", auth),) if auth else ()


# A status Route (or the store behind it) ended with -> its HTTP status and OpenAI error type; any
# other (INVALID_ARGUMENT, FAILED_PRECONDITION, ...) is the caller's request: 400.
HTTP_OF = {"UNAUTHENTICATED": (401, "authentication_error"), "PERMISSION_DENIED": (403, "permission_error"),
           "RESOURCE_EXHAUSTED": (429, "rate_limit_error"), "UNAVAILABLE": (503, "api_error"),
           "DEADLINE_EXCEEDED": (504, "api_error"), "INTERNAL": (500, "server_error")}


@dataclass
class Exchange:
    """One HTTP request's state across the stream's messages."""

    headers: dict[str, str] = field(default_factory=dict)
    answer: dict[str, str] = field(default_factory=dict)  # headers added to the response
    routed: router_pb2.RouteResponse | None = None  # with tenancy, its request_id is settled at the answer


def header_map(headers: base_pb2.HeaderMap) -> dict[str, str]:
    """Envoy's headers (value or raw_value), names lower-case; bytes that are not UTF-8 kept apart as
    `\\xNN` (replaced by U+FFFD, two session ids that differ only there were one session)."""
    return {h.key.lower(): h.raw_value.decode("utf-8", "backslashreplace") if h.raw_value else h.value
            for h in headers.headers}


def mutation(headers: dict[str, str], remove: tuple[str, ...] = ()) -> ep.HeaderMutation:
    return ep.HeaderMutation(
        set_headers=[base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=k, raw_value=v.encode()),
                                                append_action=_OVERWRITE) for k, v in headers.items()],
        remove_headers=list(remove))


def refuse(status: int, message: str, error_type: str = "invalid_request_error") -> ep.ProcessingResponse:
    """An immediate answer with an OpenAI-style error body."""
    metrics.EXTPROC_REQUESTS.labels("rejected" if status < 500 else "failed").inc()
    return ep.ProcessingResponse(immediate_response=ep.ImmediateResponse(
        status=http_status_pb2.HttpStatus(code=status), body=openai_request.error_body(message, error_type),
        headers=mutation({"content-type": "application/json"}), details=f"tagrouter: {message}"[:200]))


def endpoint(headers: dict[str, str]) -> str | None:
    """"chat" or "completions" for a POST to those OpenAI paths; None for anything else (passed as it is)."""
    if headers.get(":method", "POST") != "POST":
        return None
    path = headers.get(":path", "").split("?", 1)[0].rstrip("/").lower()
    if path.endswith("/chat/completions"):
        return "chat"
    return "completions" if path.endswith("/completions") else None


def knobs(headers: dict[str, str]) -> dict:
    """RouteRequest fields from the x-tagrouter-* request headers."""
    fields: dict = {}
    candidates = headers.get(CANDIDATES_HEADER, "")
    if candidates.strip():
        fields["candidate_models"] = [c.strip() for c in candidates.split(",") if c.strip()]
    raw = headers.get(COST_WEIGHT_HEADER, "").strip()
    if raw:
        try:
            fields["cost_weight"] = float(raw)
        except ValueError:
            raise InvalidRequest(f"{COST_WEIGHT_HEADER}: {raw[:40]!r} is not a number") from None
    return fields


class ExternalProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):
    """Routes OpenAI request bodies through `route` (the RouterServicer's Route)."""

    def __init__(self, router, aliases: tuple[str, ...]):
        self.router = router
        self.aliases = frozenset(aliases)

    async def Process(self, request_iterator, context):
        exchange = Exchange()
        async for message in request_iterator:
            kind = message.WhichOneof("request")
            if kind == "request_headers":
                exchange.headers = header_map(message.request_headers.headers)
                # the caller's own x-tagrouter-model never chooses the route: only this processor sets it;
                # with tenancy, `authorization` is the tenant's TagRouter token, not the LLM provider's
                remove = (MODEL_HEADER, "authorization") if self._tenancy else (MODEL_HEADER,)
                yield ep.ProcessingResponse(request_headers=ep.HeadersResponse(response=ep.CommonResponse(
                    header_mutation=mutation({}, remove=remove), clear_route_cache=True)))
            elif kind == "request_body":
                answer = await self._on_body(exchange, message.request_body)
                yield answer
                if answer.HasField("immediate_response"):
                    return
            elif kind == "response_headers":
                await self._settle(exchange, header_map(message.response_headers.headers).get(":status", ""))
                yield ep.ProcessingResponse(response_headers=ep.HeadersResponse(
                    response=ep.CommonResponse(header_mutation=mutation(exchange.answer))))
            elif kind == "response_body":
                yield ep.ProcessingResponse(response_body=ep.BodyResponse())
            elif kind == "request_trailers":
                yield ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
            elif kind == "response_trailers":
                yield ep.ProcessingResponse(response_trailers=ep.TrailersResponse())

    @property
    def _tenancy(self) -> bool:
        return getattr(self.router, "tenants", None) is not None

    async def _settle(self, exchange: Exchange, status: str) -> None:
        """A tenant's routed request settles when its answer starts: at Route's estimate when the upstream
        answered 2xx (this processor sees no body, so no `usage`), at 0 otherwise. Unsettled, its
        reservation would expire uncharged and the tenant's cap would refill every reservation TTL."""
        if exchange.routed is None or not exchange.routed.request_id:
            return
        cost = exchange.routed.estimated_cost_usd if status.startswith("2") else 0.0
        try:
            await self.router.Settle(router_pb2.SettleRequest(request_id=exchange.routed.request_id, cost_usd=cost),
                                     NoDeadline(exchange.headers))
        except Exception as err:  # the answer goes on; the reservation then expires
            log.warning("ext_proc: settling %s failed: %s", exchange.routed.request_id, status_for(err, "Settle")[1])

    async def _on_body(self, exchange: Exchange, body: ep.HttpBody) -> ep.ProcessingResponse:
        which = endpoint(exchange.headers)
        if which is None:
            return ep.ProcessingResponse(request_body=ep.BodyResponse())
        if not body.end_of_stream:
            return refuse(500, "the ext_proc filter must buffer the request body (request_body_mode: BUFFERED)",
                          "server_error")
        encoding = exchange.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return refuse(415, f"content-encoding {encoding[:40]!r}: send the request body uncompressed to be routed")
        try:
            conversation = openai_request.parse(body.body, completions=which == "completions")
            if conversation.model in self.aliases:
                return await self._route(exchange, conversation)
            pool = self.router.pool()
            if pool and conversation.model not in pool:
                return refuse(400, f"unknown model {shown(conversation.model)}: use an alias "
                                   f"({', '.join(sorted(self.aliases))}) or a pool model ({', '.join(sorted(pool))})")
            if self._tenancy:  # the tenant's pool and budget hold here too
                return await self._route(exchange, conversation, explicit=True)
        except Exception as err:
            # the caller's mistake or the tenant's refusal: 4xx; a store that cannot be reached: 503 at once;
            # anything else: 500, logged with its traceback (status_for)
            code, message = status_for(err, "ext_proc")
            status, kind = HTTP_OF.get(code.name, (400, "invalid_request_error"))
            return refuse(status, message if status != 500 else "the router failed to route this request", kind)
        metrics.EXTPROC_REQUESTS.labels("passed").inc()
        exchange.answer = {MODEL_HEADER: conversation.model}
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=ep.CommonResponse(
            header_mutation=mutation({MODEL_HEADER: conversation.model}), clear_route_cache=True)))

    async def _route(self, exchange: Exchange, conversation: openai_request.Conversation,
                     explicit: bool = False) -> ep.ProcessingResponse:
        fields = {"candidate_models": [conversation.model]} if explicit else knobs(exchange.headers)
        request = router_pb2.RouteRequest(
            **conversation.route_fields(), **fields,
            session_id=openai_request.session_id(exchange.headers.get(SESSION_HEADER), conversation))
        routed = await self.router.Route(request, NoDeadline(exchange.headers))
        exchange.routed = routed
        new_body = openai_request.with_model(conversation, routed.model)
        exchange.answer = openai_request.answer_headers(routed, bool(request.session_id))
        metrics.EXTPROC_REQUESTS.labels("routed").inc()
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=ep.CommonResponse(
            header_mutation=mutation({MODEL_HEADER: routed.model, "content-length": str(len(new_body))}),
            body_mutation=ep.BodyMutation(body=new_body), clear_route_cache=True)))
