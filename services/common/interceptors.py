"""The one helper every server interceptor uses to wrap a unary-unary handler."""
from __future__ import annotations

from typing import Awaitable, Callable

import grpc

Behavior = Callable[[object, grpc.aio.ServicerContext], Awaitable[object]]


def wrap_unary(handler: grpc.RpcMethodHandler | None, wrap: Callable[[Behavior], Behavior]):
    """The handler with its unary-unary behaviour replaced by wrap(behaviour); others untouched."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def wrap_unary_stream(handler: grpc.RpcMethodHandler | None, wrap):
    """The handler with its unary-stream behaviour (an async generator) replaced by wrap(behaviour)."""
    if handler is None or handler.unary_stream is None:
        return handler
    return grpc.unary_stream_rpc_method_handler(
        wrap(handler.unary_stream),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
