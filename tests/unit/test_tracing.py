"""Tracing settings are checked like every other setting; log lines carry the ids inside a span."""
import logging

import pytest

from services.common import tracing
from services.common.settings import ConfigError
from services.common.tracing_settings import TracingSettings


def test_tracing_is_off_without_an_endpoint():
    assert not TracingSettings.from_env("router", {}).enabled
    assert not TracingSettings.from_env("router", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                                   "OTEL_SDK_DISABLED": "true"}).enabled
    on = TracingSettings.from_env("tagger", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:4317",
                                            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                            "OTEL_TRACES_SAMPLER_ARG": "0.01"})
    assert (on.endpoint, on.service_name, on.sampler, on.sampler_ratio) == (
        "https://t:4317", "tagrouter-tagger", "parentbased_traceidratio", 0.01)


@pytest.mark.parametrize("env, name", [
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER_ARG": "nan"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://c:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:port"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ({"OTEL_SDK_DISABLED": "perhaps"}, "OTEL_SDK_DISABLED"),
])
def test_bad_tracing_values_are_named(env, name):
    with pytest.raises(ConfigError, match=name):
        TracingSettings.from_env("router", env)


def test_off_means_no_interceptor_and_no_span():
    assert not tracing.enabled()
    assert tracing.server_interceptors("RouterService") == [] and tracing.client_interceptors() is None
    with tracing.span("route.tag") as current:
        assert current is None
    assert tracing.current_context() is None


def test_log_lines_carry_the_trace_and_span_ids(caplog):
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    saved = tracing._tracer
    tracing._tracer = tracer  # on, without an exporter
    try:
        with tracer.start_as_current_span("route") as span:
            tracing.TraceIds().filter(record)
        ctx = span.get_span_context()
        assert record.trace_ids == f" trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}"
        outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
        tracing.TraceIds().filter(outside)
        assert outside.trace_ids == ""
    finally:
        tracing._tracer = saved
