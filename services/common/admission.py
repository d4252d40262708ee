"""Admission control per kind of work, so one kind cannot take every slot from the others.

gRPC's own `maximum_concurrent_rpcs` counts every call alike: 511 idle WatchWeights streams (which
need no token) left no room for Score, Feedback, LoadWeights or the health check. Here each kind
has its own room, and a call past its kind's limit is refused at once with RESOURCE_EXHAUSTED
naming the limit and its setting:

- health checks (`grpc.health.v1.Health/Check`): always admitted, never counted (a liveness probe
  must not fail because the server is busy);
- admin RPCs (those that change state: LoadWeights, Feedback): their own limit;
- streams (WatchWeights, health Watch, reflection): a limit in total and one per client address
  (the peer's IP, whatever its port, so many connections from one host share it);
- every other call (Score, Route, Tag, ...): the unary limit.

The counts live on the event loop (no lock): a call is counted from admission to its end,
a stream until it ends or is cancelled.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import grpc

from services.common.interceptors import KINDS, WrappedHandlers, messages, wrap_handler
from services.common.security import STATE_CHANGING_METHODS

HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Limits:
    unary: int = 512  # TAGROUTER_MAX_CONCURRENT_RPCS
    admin: int = 64  # TAGROUTER_MAX_ADMIN_RPCS
    streams: int = 1024  # TAGROUTER_MAX_STREAMS
    streams_per_peer: int = 64  # TAGROUTER_MAX_STREAMS_PER_PEER


def peer_host(peer: str | None) -> str:
    """'ipv4:10.0.0.7:53412' -> 'ipv4:10.0.0.7'; 'ipv6:[::1]:5000' -> 'ipv6:[::1]'; others as they are."""
    if not peer:
        return "unknown"
    if peer.startswith(("ipv4:", "ipv6:")):
        host, sep, port = peer.rpartition(":")
        if sep and port.isdigit():
            return host
    return peer


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Counts calls in flight per kind and refuses those past their kind's limit."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.in_flight: Counter[str] = Counter()  # "unary", "admin", "streams"
        self.streams_by_peer: Counter[str] = Counter()
        self._wrapped = WrappedHandlers()

    def _refusal(self, kind: str, peer: str | None) -> str | None:
        limits = self.limits
        if kind == "unary" and self.in_flight["unary"] >= limits.unary:
            return f"server busy: {limits.unary} calls in flight (TAGROUTER_MAX_CONCURRENT_RPCS); retry with backoff"
        if kind == "admin" and self.in_flight["admin"] >= limits.admin:
            return f"server busy: {limits.admin} admin calls in flight (TAGROUTER_MAX_ADMIN_RPCS); retry with backoff"
        if kind == "streams":
            if self.in_flight["streams"] >= limits.streams:
                return f"too many open streams: {limits.streams} in all (TAGROUTER_MAX_STREAMS)"
            if self.streams_by_peer[peer] >= limits.streams_per_peer:
                return (f"too many open streams from {peer}: {limits.streams_per_peer} per client address "
                        "(TAGROUTER_MAX_STREAMS_PER_PEER)")
        return None

    def _enter(self, kind: str, peer: str | None) -> None:
        self.in_flight[kind] += 1
        if peer is not None:
            self.streams_by_peer[peer] += 1

    def _leave(self, kind: str, peer: str | None) -> None:
        self.in_flight[kind] -= 1
        if peer is not None:
            self.streams_by_peer[peer] -= 1
            if self.streams_by_peer[peer] <= 0:
                del self.streams_by_peer[peer]

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method == HEALTH_CHECK:
            return handler
        return self._wrapped.get(method, handler, lambda h: self._admitting(h, method))

    def _admitting(self, handler, method: str):
        streaming = handler.response_streaming or handler.request_streaming
        kind = "admin" if method in STATE_CHANGING_METHODS else "streams" if streaming else "unary"

        def wrap_unary(inner):
            async def admitted(request, context):
                refusal = self._refusal(kind, None)
                if refusal is not None:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                self._enter(kind, None)
                try:
                    return await inner(request, context)
                finally:
                    self._leave(kind, None)

            return admitted

        def wrap_stream(inner):
            async def admitted(request, context):
                peer = peer_host(context.peer()) if kind == "streams" else None
                refusal = self._refusal(kind, peer)
                if refusal is not None:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                self._enter(kind, peer)
                try:
                    async for message in messages(inner(request, context)):
                        yield message
                finally:
                    self._leave(kind, peer)

            return admitted

        for handler_kind in KINDS:
            if getattr(handler, handler_kind) is not None:
                return wrap_handler(handler, handler_kind, wrap_unary if handler_kind.endswith("_unary") else wrap_stream)
        return handler
