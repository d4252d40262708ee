"""The local stack: tagger, scorer and router as three processes on loopback, plus Redis.

One launcher for `make run` (`tagrouter serve all`), `tagrouter route --embedded`, the
benchmark and the tests. Each service runs as in production, `python -m services.<name>`,
configured by environment variables; Redis is `REDIS_URL` when set, else a private
redis-server that lives as long as the stack.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.common.server import EXIT_PORT_IN_USE
from tagrouter.stack.embedded_redis import START_ATTEMPTS, EmbeddedRedis, die_with_parent, free_port
from tagrouter.stack.health import ServiceExited, wait_ready_http, wait_serving

SERVICES = ("tagger", "scorer", "router")
GATEWAY = "gateway"  # the HTTP front door: started when the stack is given an upstreams file
FULL_NAMES = {name: f"tagrouter.{name}.v1.{name.capitalize()}Service" for name in SERVICES}
STOP_SECONDS = 15.0


class ServiceProcess:
    """One service as a subprocess on a port of its own (a free one unless given)."""

    def __init__(self, service: str, env: Mapping[str, str], *args: str, port: int | None = None,
                 output: IO | int | None = subprocess.PIPE, cwd: Path | None = None):
        if service not in (*SERVICES, GATEWAY):
            raise ValueError(f"unknown service {service!r}; one of {', '.join((*SERVICES, GATEWAY))}")
        self.service = service
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = dict(env)
        self.extproc_port = 0
        if service == "router":  # the default port (50054) would collide between stacks on one machine
            env["TAGROUTER_EXTPROC_PORT"] = env.get("TAGROUTER_EXTPROC_PORT", "").strip() or str(free_port())
            self.extproc_port = int(env["TAGROUTER_EXTPROC_PORT"])
        command = [sys.executable, "-m", f"services.{service}", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(die_with_parent(command, signal.SIGTERM),  # a killed launcher orphans nothing
                                     env=dict(env), cwd=cwd, stdout=output,
                                     stderr=subprocess.STDOUT if output is not None else None, text=True)

    def wait_serving(self, timeout: float = 120.0) -> None:
        if self.service == GATEWAY:
            wait_ready_http(f"http://{self.address}/readyz", timeout, (self.proc,))
        else:
            wait_serving(self.address, FULL_NAMES[self.service], timeout, (self.proc,))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        """What the process printed (after it stopped), when its output was captured."""
        return self.proc.stdout.read() if self.proc.stdout else ""


@dataclass
class LocalStack:
    """`with LocalStack(...) as stack:` three services wired to each other, SERVING on entry.

    env: the services' environment (default: this process's); ports: fixed ports by service
    (others are free ones); metrics: give each service a free /metrics port (else none);
    log_dir: one log file per service (else their output goes to this process's, or nowhere
    with quiet=True).
    """

    env: Mapping[str, str] | None = None
    ports: Mapping[str, int] = field(default_factory=dict)
    metrics: bool = False
    log_dir: Path | None = None
    quiet: bool = False
    feedback_by_query: bool = True  # the scorer may tag a Feedback's query through the tagger
    router_args: tuple[str, ...] = ()
    upstreams: Path | None = None  # an upstreams file: start the gateway too (ports["gateway"], else a free port)
    start_timeout: float = 120.0
    processes: dict[str, ServiceProcess] = field(default_factory=dict, init=False)
    metrics_urls: dict[str, str] = field(default_factory=dict, init=False)
    redis_url: str = field(default="", init=False)
    _exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False, repr=False)

    @property
    def router(self) -> str:
        return self.processes["router"].address

    @property
    def extproc(self) -> str:
        """The router's Envoy external processor (ports["extproc"] when given, else a free port)."""
        return f"127.0.0.1:{self.processes['router'].extproc_port}"

    @property
    def gateway(self) -> str:
        """The gateway's base URL for OpenAI clients, e.g. http://127.0.0.1:8080/v1."""
        return f"http://{self.processes[GATEWAY].address}/v1"

    @property
    def scorer(self) -> str:
        return self.processes["scorer"].address

    @property
    def tagger(self) -> str:
        return self.processes["tagger"].address

    def start(self, wait: bool = True) -> LocalStack:
        for attempt in range(START_ATTEMPTS):
            try:
                self._start(wait)
                return self
            except ServiceExited as err:
                self.stop()
                # a port chosen free can be taken before the service binds it: choose them all again
                if err.returncode != EXIT_PORT_IN_USE or attempt == START_ATTEMPTS - 1:
                    raise
                self.processes, self.metrics_urls, self._exit = {}, {}, contextlib.ExitStack()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start(self, wait: bool) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.redis_url = env.get("REDIS_URL", "").strip()
        if not self.redis_url:
            self.redis_url = env["REDIS_URL"] = self._exit.enter_context(EmbeddedRedis())
        ports = {name: self.ports.get(name) or free_port() for name in SERVICES}
        env.update(TAGGER_ADDR=f"127.0.0.1:{ports['tagger']}", SCORER_ADDR=f"127.0.0.1:{ports['scorer']}")
        # Sticky sessions in the stack's Redis, unless the environment names another
        env["TAGROUTER_SESSION_REDIS_URL"] = env.get("TAGROUTER_SESSION_REDIS_URL", "").strip() or self.redis_url
        if self.feedback_by_query:
            env["FEEDBACK_TAGGER_ADDR"] = env["TAGGER_ADDR"]
        if self.log_dir is not None:
            Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        self._exit.callback(self._stop_processes)
        for name in SERVICES:
            own, output = self._own_env_and_output(name, env)
            if name == "router" and self.ports.get("extproc"):
                own["TAGROUTER_EXTPROC_PORT"] = str(self.ports["extproc"])
            args = self.router_args if name == "router" else ()
            self.processes[name] = ServiceProcess(name, own, *args, port=ports[name], output=output)
        if self.upstreams is not None:
            self._start_gateway(env, ports["router"])
        if wait:
            self.wait_serving()
        else:
            self.wait_bound()

    def _own_env_and_output(self, name: str, env: dict[str, str]):
        """One service's environment (its own metrics port: they would collide on the default) and
        where its output goes (its log file, nowhere when quiet, else this process's)."""
        own = dict(env)
        if self.metrics:
            own["TAGROUTER_METRICS_PORT"] = str(free_port())
            self.metrics_urls[name] = f"http://127.0.0.1:{own['TAGROUTER_METRICS_PORT']}/metrics"
        if self.log_dir is not None:
            return own, self._exit.enter_context(open(Path(self.log_dir) / f"{name}.log", "w"))
        return own, subprocess.DEVNULL if self.quiet else None

    def _start_gateway(self, env: dict[str, str], router_port: int) -> None:
        own, output = self._own_env_and_output(GATEWAY, env)
        own.update(ROUTER_ADDR=f"127.0.0.1:{router_port}", TAGROUTER_UPSTREAMS=str(self.upstreams))
        self.processes[GATEWAY] = ServiceProcess(GATEWAY, own, port=self.ports.get(GATEWAY), output=output)

    def wait_serving(self) -> None:
        """Until the router says SERVING (it waits for both downstreams) and the gateway, when there is
        one, is ready; fails if a service exits."""
        procs = tuple(p.proc for p in self.processes.values())
        wait_serving(self.router, FULL_NAMES["router"], self.start_timeout, procs)
        if GATEWAY in self.processes:
            wait_ready_http(f"http://{self.processes[GATEWAY].address}/readyz", self.start_timeout, procs)

    def wait_bound(self) -> None:
        """Until every service has bound its ports (its /metrics answers: served right after the gRPC
        bind, in plaintext even when gRPC is TLS-only), without waiting for SERVING; fails if a service
        exits, so that a port taken meanwhile (exit EXIT_PORT_IN_USE) is retried by start() here too.
        Needs `metrics`: without it nothing plaintext answers, and this returns at once."""
        procs = tuple(p.proc for p in self.processes.values())
        for url in self.metrics_urls.values():
            wait_ready_http(url, self.start_timeout, procs)

    def _stop_processes(self) -> None:
        for proc in reversed(list(self.processes.values())):  # gateway, then router: each drains its callers
            proc.stop()

    def stop(self) -> None:
        self._exit.close()

    close = stop

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
