"""The one helper every server interceptor uses to wrap a handler's behaviour."""
from __future__ import annotations

from collections.abc import Callable

import grpc

_MAKERS = {"unary_unary": grpc.unary_unary_rpc_method_handler, "unary_stream": grpc.unary_stream_rpc_method_handler}


def wrap_handler(handler: grpc.RpcMethodHandler | None, kind: str, wrap: Callable):
    """The handler with its `kind` behaviour ("unary_unary", or "unary_stream": an async
    generator) replaced by wrap(behaviour); handlers of other kinds untouched."""
    if handler is None or getattr(handler, kind) is None:
        return handler
    return _MAKERS[kind](wrap(getattr(handler, kind)), request_deserializer=handler.request_deserializer,
                         response_serializer=handler.response_serializer)


def wrap_unary(handler: grpc.RpcMethodHandler | None, wrap: Callable):
    return wrap_handler(handler, "unary_unary", wrap)
