"""OpenTelemetry tracing: a span per RPC and per phase of Route, W3C `traceparent` across services.

Off unless an OTLP endpoint is set (tracing_settings.TracingSettings, the standard OTEL_* variables).
Off, nothing is installed: the SDK is not imported, no interceptor is added to a server or a
channel, and `span()` hands back one shared no-op context, so the hot path pays a global read.
On, each process exports its spans in batches over OTLP/gRPC; the caller's `traceparent`
metadata (another service, or any gRPC client) becomes the parent of the server span.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping

import grpc

from services.common.interceptors import wrap_unary
from services.common.tracing_settings import TracingSettings

log = logging.getLogger(__name__)

_tracer = None  # the SDK tracer while tracing is on; None means off
_provider = None
_NO_SPAN = contextlib.nullcontext()  # reusable, returns None from __enter__
# Probes and reflection are not traced: they would bury the Routes.
UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
PREFIX = "tagrouter."  # of our span attributes: tagrouter.model, tagrouter.degraded_reason, ...


def enabled() -> bool:
    return _tracer is not None


def configure(settings: TracingSettings) -> bool:
    """Installs the SDK with an OTLP/gRPC batch exporter when `settings` has an endpoint; True if on."""
    global _tracer, _provider
    if not settings.enabled or _tracer is not None:
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}),
                               sampler=_sampler(settings))
    insecure = not settings.endpoint.startswith("https://")
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint, insecure=insecure)))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("tagrouter")
    log.info("tracing on: spans of %s to %s, sampler %s (%g)", settings.service_name, settings.endpoint,
             settings.sampler, settings.sampler_ratio)
    return True


def _sampler(settings: TracingSettings):
    from opentelemetry.sdk.trace import sampling

    root = {"always_on": sampling.ALWAYS_ON, "always_off": sampling.ALWAYS_OFF,
            "traceidratio": sampling.TraceIdRatioBased(settings.sampler_ratio)}
    name = settings.sampler
    if name.startswith("parentbased_"):
        return sampling.ParentBased(root[name.removeprefix("parentbased_")])
    return root[name]


def shutdown() -> None:
    """Sends the spans still queued (at the end of the drain), then stops exporting."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def span(name: str, attributes: Mapping | None = None, context=None, links=None, start_time: int | None = None):
    """A span, current inside the `with` (the shared no-op context, yielding None, when off)."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, context=context, attributes=attributes, links=links,
                                         start_time=start_time)


def record_span(name: str, start_ns: int, end_ns: int, attributes: Mapping | None = None, context=None) -> None:
    """A span that has already happened (a wait measured by timestamps)."""
    if _tracer is not None:
        _tracer.start_span(name, context=context, attributes=attributes, start_time=start_ns).end(end_ns)


def annotate(attributes: Mapping) -> None:
    """Sets attributes on the current span (the RPC's server span unless a phase span is open)."""
    if _tracer is not None:
        from opentelemetry import trace

        current = trace.get_current_span()
        if current.is_recording():
            current.set_attributes(attributes)


def fail(current, reason: str) -> None:
    """Marks `current` (a span or None) as failed, with the reason as an attribute."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute(PREFIX + "degraded_reason", reason)
        current.set_status(Status(StatusCode.ERROR, reason))


def current_context():
    """The current OTel context, to hand to work done elsewhere (a batch worker); None when off or
    when the current span is not sampled (then the work makes no spans either)."""
    if _tracer is None:
        return None
    from opentelemetry import context, trace

    return context.get_current() if trace.get_current_span().is_recording() else None


def link_to(ctx):
    from opentelemetry import trace

    return trace.Link(trace.get_current_span(ctx).get_span_context())


def now_ns() -> int:
    return time.time_ns()


class ServerTracing(grpc.aio.ServerInterceptor):
    """One SERVER span per unary RPC, child of the caller's `traceparent` when it sends one."""

    def __init__(self, service: str):
        self.service = service

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if _tracer is None or method.startswith(UNTRACED_PREFIXES):
            return handler
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parent = extract({k: v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)})
        name = method.lstrip("/")
        attributes = {"rpc.system": "grpc", "rpc.service": name.rsplit("/", 1)[0], "rpc.method": name.rsplit("/", 1)[-1]}

        def wrap(inner):
            async def traced(request, context):
                with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                                                   record_exception=False, set_status_on_exception=False) as current:
                    try:
                        return await inner(request, context)
                    except BaseException:
                        code = context.code()
                        code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
                        current.set_attribute("rpc.grpc.status_code", code.value[0])
                        current.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}"))
                        raise

            return traced

        return wrap_unary(handler, wrap)


class ClientTracing(grpc.aio.UnaryUnaryClientInterceptor):
    """Puts the current span's `traceparent` in the metadata of every unary call on a channel."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        from opentelemetry.propagate import inject

        carrier: dict[str, str] = {}
        inject(carrier)
        if carrier:
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *carrier.items())
            client_call_details = client_call_details._replace(metadata=metadata)
        return await continuation(client_call_details, request)


def server_interceptors(service: str) -> list:
    return [ServerTracing(service)] if _tracer is not None else []


def client_interceptors() -> list | None:
    return [ClientTracing()] if _tracer is not None else None


class TraceIds(logging.Filter):
    """Adds ` trace_id=... span_id=...` to a log record made inside a span (else an empty string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_ids = ""
        if _tracer is not None:
            from opentelemetry import trace

            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                record.trace_ids = f" trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}"
        return True
