"""OpenTelemetry tracing settings, from the standard OTEL_* variables (named in settings.ENVIRONMENT)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.env import ConfigError, Env, check_address

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing, from the standard OTEL_* variables; off unless an endpoint is set.

    Other OTEL_* variables (headers, certificates, batch sizes) are read by the SDK's exporter itself."""

    service_name: str
    endpoint: str | None = None
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> TracingSettings:
        e = Env(env)
        endpoint = e.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") or e.str("OTEL_EXPORTER_OTLP_ENDPOINT", "") or None
        if endpoint is not None:
            name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if e.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "") else \
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            check_address(name, endpoint.split("://", 1)[-1].rstrip("/"))
            if "://" in endpoint and endpoint.split("://", 1)[0] not in ("http", "https"):
                raise ConfigError(f"{name}={endpoint!r}: the scheme must be http or https (OTLP over gRPC)")
        sampler = e.str("OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
        if sampler not in SAMPLERS:
            raise ConfigError(f"OTEL_TRACES_SAMPLER={sampler!r} is not one of {', '.join(SAMPLERS)}")
        return cls(service_name=e.str("OTEL_SERVICE_NAME", f"tagrouter-{service}"),
                   endpoint=None if e.bool("OTEL_SDK_DISABLED", False) else endpoint, sampler=sampler,
                   sampler_ratio=e.float("OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0))
