"""Server bootstrap written once for every service: health, reflection, errors, SIGTERM.

Start-up runs in phases: bind, start, warm up (the service's own `start`), and only then
report SERVING, so a readiness probe never sends traffic to a process that cannot answer.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

import grpc
import threadpoolctl
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import security, tracing
from services.common.admission import AdmissionInterceptor, Limits
from services.common.errors import ErrorMappingInterceptor
from services.common.metrics import MetricsInterceptor, serve_metrics
from services.common.settings import ConfigError, ServerSettings
from services.common.tracing_settings import TracingSettings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # weights loads are the largest messages

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),  # two servers must never share a port by accident
]


# The exit code of a service whose port is taken: a launcher that chose the port may choose another.
EXIT_PORT_IN_USE = 3


class PortInUse(OSError):
    """The gRPC port (or a companion's) could not be bound."""


@dataclass
class ServiceSpec:
    """One servicer and how to put it on a server."""

    full_name: str  # from the proto descriptor, e.g. "tagrouter.router.v1.RouterService"
    servicer: object
    add_to_server: Callable[[object, grpc.aio.Server], None]
    start: Callable[[], Awaitable[None]] | None = None  # warm-up; SERVING only after it
    stop: Callable[[], Awaitable[None]] | None = None  # close resources after the drain
    # End long-lived streams as the drain begins, so they do not hold it for the whole grace period.
    end_streams: Callable[[], Awaitable[None]] | None = None
    # Other servicers of the same process on ports of their own (the router's Envoy external
    # processor): (spec, port); each gets this service's settings, TLS and metrics.
    companions: list[tuple[ServiceSpec, int]] = field(default_factory=list)


class RunningService:
    """A started gRPC server for one service, with its health servicer."""

    def __init__(self, spec: ServiceSpec, settings: ServerSettings):
        self.spec = spec
        self.settings = settings
        self.health = health.aio.HealthServicer()
        # Outermost first: metrics see the final status, admission refuses past its kind's limit,
        # auth refuses before any work, errors map last.
        self.admission = AdmissionInterceptor(Limits(
            unary=settings.max_concurrent_rpcs, admin=settings.max_admin_rpcs, streams=settings.max_streams,
            streams_per_peer=settings.max_streams_per_peer))
        short_name = spec.full_name.rsplit(".", 1)[-1]
        # Tracing (only when on) inside the metrics: its span ends with the status the errors mapped.
        interceptors = [MetricsInterceptor(short_name), *tracing.server_interceptors(short_name), self.admission]
        if settings.admin_token:
            interceptors.append(security.AdminTokenInterceptor(settings.admin_token))
        interceptors.append(ErrorMappingInterceptor())
        # No global maximum_concurrent_rpcs: gRPC would count every kind of call alike, so idle
        # streams could refuse health checks and admin RPCs; the admission interceptor counts per kind.
        self.server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
        self.port = 0
        self.warm_up: asyncio.Task | None = None

    async def start(self) -> int:
        """Bind and start; warm up in the background, then report SERVING. Returns the bound port.

        The server answers at once (health says NOT_SERVING until warm-up ends), so a
        process that waits for its dependencies still takes signals and health checks.
        """
        spec, server = self.spec, self.server
        spec.add_to_server(spec.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for name in ("", spec.full_name):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.reflection:
            names = (spec.full_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                     reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server)
        try:
            if self.settings.tls:
                credentials = security.server_credentials(self.settings.tls_cert_file, self.settings.tls_key_file,
                                                          self.settings.tls_client_ca_file)
                self.port = server.add_secure_port(self.settings.bind_address, credentials)
            else:
                self.port = server.add_insecure_port(self.settings.bind_address)
        except RuntimeError as err:  # grpc's "Failed to bind to address ..."
            raise PortInUse(f"could not bind {self.settings.bind_address}: {err}") from None
        if self.port == 0:
            raise PortInUse(f"could not bind {self.settings.bind_address}")
        await server.start()
        serve_metrics(self.settings.metrics_port, self.settings.metrics_host)
        log.info("%s listening on %s:%d%s", spec.full_name, self.settings.host, self.port,
                 " (TLS)" if self.settings.tls else "")
        self.warm_up = asyncio.get_running_loop().create_task(self._warm_up())
        return self.port

    async def _warm_up(self) -> None:
        if self.spec.start is not None:
            await self.spec.start()
        # Everything loaded so far (modules, model, vocabulary) lives as long as the process:
        # freezing it keeps the garbage collector's full passes, about 10 ms over the tagger's
        # 50,000 start-up objects, out of request latency (docs/BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        for name in ("", self.spec.full_name):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s SERVING", self.spec.full_name)

    async def stop(self) -> None:
        """Stop taking traffic, drain in-flight calls for the grace period, close resources."""
        if not self.warm_up.done():
            self.warm_up.cancel()
        await self.health.enter_graceful_shutdown()
        if self.spec.end_streams is not None:
            await self.spec.end_streams()
        await self.server.stop(self.settings.grace_seconds)
        if self.spec.stop is not None:
            await self.spec.stop()
        log.info("%s stopped", self.spec.full_name)


def limit_blas_threads() -> None:
    """numpy's OpenBLAS pool to one thread, unless OPENBLAS_NUM_THREADS says otherwise. Its pool thread
    spins between calls: under load the tagger's tag selection (a batch of embeddings times the
    prototypes) woke it, and it held 0.34-0.38 of the second core that the encoder, the router and the
    event loops need, while Route at 32 in flight fell to 0.17 of the batched encoder (docs/BENCHMARKS.md,
    "Fourth step"). The services' arrays are small: one thread loses nothing. Set at run time, in the
    service's process only (not in a bench or test that imports the services)."""
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def run(main: Awaitable[None]) -> None:
    """Runs a service's main coroutine on uvloop: measured here, it takes about a tenth of a
    millisecond off each gRPC hop, and Route makes two (docs/BENCHMARKS.md)."""
    uvloop.run(main)


def configure_logging(level: str) -> None:
    """Log lines with the trace and span ids when tracing is on (configure tracing first)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s:%(trace_ids)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(tracing.TraceIds())


def with_companions(spec: ServiceSpec, settings: ServerSettings) -> list[RunningService]:
    """The service and its companions. A companion's clients are proxies (Envoy: one address for
    every request it forwards), so its streams per client address may take the whole stream limit."""
    return [RunningService(spec, settings), *(
        RunningService(companion, replace(settings, port=port, max_streams_per_peer=settings.max_streams))
        for companion, port in spec.companions)]


async def run_until_signalled(services: list[RunningService], on_ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Start the services in order, run until SIGTERM or SIGINT, stop them in reverse order.

    A warm-up that fails (bad weights file, missing model) stops everything with its error.
    """
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    started: list[RunningService] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        stop_task = asyncio.ensure_future(stop_requested.wait())
        ready = asyncio.gather(*(s.warm_up for s in started))
        done, _ = await asyncio.wait([stop_task, ready], return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            ready.result()  # raises the error of a failed warm-up
            if on_ready is not None:
                await on_ready()
            await stop_task
        else:
            ready.cancel()  # stopped while warming up: retrieved, or asyncio logs it as an unseen error
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        log.info("signal received: draining")
    finally:
        for service in reversed(started):
            await service.stop()


def main(service: str, create: Callable[[Mapping[str, str]], ServiceSpec], argv: list[str] | None = None,
         flags: Mapping[str, str] | None = None) -> int:
    """`python -m services.<service>`: settings from the environment (and `--port`, plus `flags`:
    option -> environment variable), serve until SIGTERM or SIGINT. Exit 2 on a bad setting,
    EXIT_PORT_IN_USE when a port is taken."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}",
                                     description=f"Run the {service} service (configured by environment variables).")
    parser.add_argument("--port", type=int, help="gRPC port (overrides TAGROUTER_PORT)")
    for option, variable in (flags or {}).items():
        parser.add_argument(option, help=f"overrides {variable}")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    for option, variable in (flags or {}).items():
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value:
            env[variable] = value
    try:
        settings = ServerSettings.from_env(service, env).with_port(args.port)
        tracing_settings = TracingSettings.from_env(service, env)
        configure_logging(settings.log_level)
        limit_blas_threads()
        tracing.configure(tracing_settings)  # before create(): its channels carry traceparent only if on

        async def serve() -> None:
            # gRPC aio servers and channels belong to the loop they are made in: build them here.
            await run_until_signalled(with_companions(create(env), settings))

        try:
            run(serve())
        finally:
            tracing.shutdown()  # the spans of the last calls
    except ConfigError as err:
        print(f"{service}: configuration error: {err}", file=sys.stderr)
        return 2
    except PortInUse as err:
        print(f"{service}: {err}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    return 0
