"""Errors a servicer raises, and the one interceptor that maps them to gRPC status codes.

Servicers raise these plain exceptions; nothing else in the code calls `context.abort`.
Invalid input (including an unknown model named in a request) -> INVALID_ARGUMENT;
not ready -> UNAVAILABLE; no time left in the caller's deadline -> DEADLINE_EXCEEDED; anything
unexpected -> INTERNAL, logged with its traceback.
"""
from __future__ import annotations

import logging

import grpc
import redis.exceptions
from google.protobuf.message import DecodeError

from services.common.interceptors import WrappedHandlers, wrap_handler
from tagrouter.core.limits import InvalidRequest

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base: an error with a status code and a message for the caller."""

    code = grpc.StatusCode.INTERNAL


def _error_kind(code: grpc.StatusCode, doc: str) -> type[ServiceError]:
    """The ServiceError for one status code, named after it (INVALID_ARGUMENT -> InvalidArgument)."""
    return type(code.name.title().replace("_", ""), (ServiceError,), {"code": code, "__doc__": doc,
                                                                      "__module__": __name__})


# One line each: a table of the status codes the services raise, not six copies of a class body.
InvalidArgument = _error_kind(grpc.StatusCode.INVALID_ARGUMENT, "The request is wrong; the message names the field.")
Unavailable = _error_kind(grpc.StatusCode.UNAVAILABLE, "Not ready, or a backing store is unreachable: retry.")
ResourceExhausted = _error_kind(grpc.StatusCode.RESOURCE_EXHAUSTED, "A limit is reached; the message names it.")
FailedPrecondition = _error_kind(grpc.StatusCode.FAILED_PRECONDITION, "The state does not allow this call now.")
Unauthenticated = _error_kind(grpc.StatusCode.UNAUTHENTICATED, "No valid credentials (a tenant's bearer token).")
PermissionDenied = _error_kind(grpc.StatusCode.PERMISSION_DENIED, "The caller may not do this (a model outside its pool).")
NotFound = _error_kind(grpc.StatusCode.NOT_FOUND, "The named thing does not exist.")
DeadlineExceeded = _error_kind(grpc.StatusCode.DEADLINE_EXCEEDED, "No time is left in the caller's deadline.")

# A backing store that cannot be reached is a passing condition the caller may retry.
UNREACHABLE = (ConnectionError, TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


# A status message travels in a trailer, which gRPC caps (8 KiB by default): a message echoing a
# 20,000-character name ended the call RESOURCE_EXHAUSTED instead of with its own status.
MAX_DETAILS_CHARS = 1000


def _details(message: str) -> str:
    return message if len(message) <= MAX_DETAILS_CHARS else \
        f"{message[:MAX_DETAILS_CHARS]}... ({len(message)} characters in all)"


def status_for(err: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status and message an exception escaping `method` ends its call with (a surprise is
    INTERNAL, logged with its traceback): for the interceptor, and per message in a stream."""
    if isinstance(err, ServiceError):
        return err.code, _details(str(err))
    if isinstance(err, InvalidRequest):  # the core's request checks
        return grpc.StatusCode.INVALID_ARGUMENT, _details(str(err))
    if isinstance(err, UNREACHABLE):
        return grpc.StatusCode.UNAVAILABLE, f"backing store unreachable: {type(err).__name__}"
    if isinstance(err, DecodeError):  # a request stream's message, decoded inside the servicer's loop
        return grpc.StatusCode.INVALID_ARGUMENT, f"a message of the request stream does not parse: {err}"
    log.error("unhandled error in %s", method, exc_info=err)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}"


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns exceptions escaping unary handlers and streams into statuses with a clear message."""

    def __init__(self):
        self._wrapped = WrappedHandlers()

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        return self._wrapped.get(method, await continuation(handler_call_details),
                                 lambda handler: self._guarded(handler, method))

    @staticmethod
    def _guarded(handler, method: str):
        async def abort_for(err: Exception, context) -> None:
            await context.abort(*status_for(err, method))

        def wrap(inner):
            async def guarded(request, context):
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as err:  # noqa: BLE001 - the one place that turns surprises into INTERNAL
                    await abort_for(err, context)

            return guarded

        def wrap_stream(inner):
            async def guarded(request, context):
                try:
                    async for message in inner(request, context):
                        yield message
                except grpc.aio.AbortError:
                    raise
                except Exception as err:  # noqa: BLE001
                    await abort_for(err, context)

            return guarded

        # a request stream's behaviour takes the request iterator where a unary one takes the request
        handler = wrap_handler(wrap_handler(handler, "unary_unary", wrap), "unary_stream", wrap_stream)
        return wrap_handler(handler, "stream_stream", wrap_stream)
