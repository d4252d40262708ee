"""The one helper every server interceptor uses to wrap a handler's behaviour.

It also makes request decoding safe: gRPC calls a handler's request deserializer before any
interceptor's code runs, and a deserializer that raises (invalid UTF-8 in a string field, corrupt
wire bytes, groups nested past protobuf's recursion limit) made gRPC answer UNKNOWN with the
parser's internals and log a traceback per request, before the token check and past the metrics.
Wrapped here, a request that does not parse becomes an `Undecodable` marker that the first
wrapped behaviour (inside the metrics interceptor) refuses with INVALID_ARGUMENT and a plain message.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import grpc

_MAKERS = {"unary_unary": grpc.unary_unary_rpc_method_handler, "unary_stream": grpc.unary_stream_rpc_method_handler,
           "stream_unary": grpc.stream_unary_rpc_method_handler,
           "stream_stream": grpc.stream_stream_rpc_method_handler}
KINDS = tuple(_MAKERS)


class Undecodable:
    """Stands for a request whose bytes do not parse as its message type."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name

    @property
    def message(self) -> str:
        return (f"the request is not a valid {self.type_name}: its bytes do not parse (corrupt wire bytes, "
                "invalid UTF-8 in a string field, or messages nested too deep)")


def _safe_deserializer(deserializer):
    if deserializer is None or getattr(deserializer, "_tagrouter_safe", False):
        return deserializer
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    type_name = getattr(descriptor, "full_name", None) or "request message"

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 - any parse failure is the caller's bad bytes
            return Undecodable(type_name)

    deserialize._tagrouter_safe = True
    return deserialize


async def messages(result):
    """The messages of a streaming behaviour, whether it is an async generator or a coroutine that
    writes with `context.write` (as the health servicer's Watch does)."""
    if hasattr(result, "__aiter__"):
        async for message in result:
            yield message
    elif inspect.isawaitable(result):
        await result
    elif result is not None:  # a plain iterable
        for message in result:
            yield message


def _refusing_undecodable(kind: str, behaviour: Callable) -> Callable:
    if kind == "unary_unary":
        async def unary(request, context):
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await behaviour(request, context)

        return unary
    if kind == "unary_stream":
        async def stream(request, context):
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            async for message in messages(behaviour(request, context)):
                yield message

        return stream
    return behaviour  # request streams: decoded message by message, inside the servicer's loop


def wrap_handler(handler: grpc.RpcMethodHandler | None, kind: str, wrap: Callable):
    """The handler with its `kind` behaviour ("unary_unary"; "unary_stream": an async generator;
    "stream_unary", "stream_stream") replaced by wrap(behaviour); handlers of other kinds untouched.
    A wrapped unary-request handler decodes safely (see the module doc)."""
    if handler is None or getattr(handler, kind) is None:
        return handler
    deserializer = handler.request_deserializer
    if not kind.startswith("stream_"):
        deserializer = _safe_deserializer(deserializer)
    return _MAKERS[kind](wrap(_refusing_undecodable(kind, getattr(handler, kind))),
                         request_deserializer=deserializer, response_serializer=handler.response_serializer)


def wrap_unary(handler: grpc.RpcMethodHandler | None, wrap: Callable):
    return wrap_handler(handler, "unary_unary", wrap)


class WrappedHandlers:
    """An interceptor's wrapped handler per method, made once: gRPC calls `intercept_service` on
    every RPC, and re-wrapping there (closures, a new handler, a safe deserializer per layer) cost
    about 40 us a call in each service (docs/BENCHMARKS.md). Only for wrappings that depend on the
    method and the handler alone, not on the call (the admin token and tracing ones do); a handler
    that is not the one last seen (an inner layer wrapped it per call) is wrapped anew."""

    def __init__(self):
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler | None, wrap: Callable):
        if handler is None:  # an unknown method: nothing to keep (its name is the caller's to choose)
            return None
        cached = self._by_method.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap(handler)
        self._by_method[method] = (handler, wrapped)
        return wrapped
