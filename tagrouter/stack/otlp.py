"""A small OTLP trace receiver on loopback: the collector's gRPC TraceService, keeping what arrives.

For the tests and `tagrouter bench --tracing-overhead`: the services export to it exactly as to a
real collector (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT), and it lists the spans.
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

MAX_SPANS = 200_000  # kept at most; beyond that only counted (a long bench must not grow without bound)


@dataclass(frozen=True)
class Span:
    """One received span, ids as hex."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else str(v)


@dataclass
class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    spans: list = field(default_factory=list)
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Export(self, request, context):
        got = []
        for resource_spans in request.resource_spans:
            service = next((_value(a.value) for a in resource_spans.resource.attributes if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    got.append(Span(service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                    {a.key: _value(a.value) for a in s.attributes}, s.status.code, s.status.message))
        with self.lock:
            self.received += len(got)
            self.spans.extend(got[:max(0, MAX_SPANS - len(self.spans))])
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` a TraceService on 127.0.0.1 at `receiver.endpoint`."""

    def __init__(self):
        self._servicer = _Servicer()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._servicer, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(grace=None)

    @property
    def received(self) -> int:
        return self._servicer.received

    def spans(self) -> list[Span]:
        with self._servicer.lock:
            return list(self._servicer.spans)

    def clear(self) -> None:
        with self._servicer.lock:
            self._servicer.spans.clear()

    def wait_for(self, predicate, timeout: float = 15.0, interval: float = 0.05) -> list[Span]:
        """The spans once predicate(spans) holds; TimeoutError (listing what came) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({f"{s.service}:{s.name}" for s in spans})
                raise TimeoutError(f"after {timeout} s the receiver holds {len(spans)} spans: {', '.join(names)}")
            time.sleep(interval)
