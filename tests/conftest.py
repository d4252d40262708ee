"""Shared fixtures: a real Redis, real gRPC servers on free ports, the real ONNX model.

REDIS_URL, when set, is used as it is (the tests write and delete `tagrouter:*` keys in its
database: point it at a scratch database); otherwise a private redis-server is started.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis

from services.common.embedded_redis import EmbeddedRedis, free_port
from services.common.health import wait_serving  # noqa: F401 - tests import it from here

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SUITES = SHARED / "data" / "suites"
TAGROUTER = [sys.executable, "-m", "tagrouter.cli"]


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: needs ../shared/data (skipped where it is absent)")


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        yield url
        return
    with EmbeddedRedis() as url:
        yield url


@pytest.fixture
def clean_redis(redis_url):
    """A Redis with no tagrouter keys, before and after the test."""
    client = redis.Redis.from_url(redis_url)

    def wipe():
        keys = list(client.scan_iter("tagrouter:*", count=1000))
        if keys:
            client.delete(*keys)

    wipe()
    yield client
    wipe()
    client.close()


class Process:
    """A `tagrouter serve` subprocess on a free port."""

    def __init__(self, service: str, env: dict[str, str], *args: str, port: int | None = None):
        self.service = service
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(os.devnull, "w") if os.environ.get("TAGROUTER_TEST_QUIET") else None
        self.proc = subprocess.Popen([*TAGROUTER, "serve", service, "--port", str(self.port), *args],
                                     env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAGROUTER_")}
    # Generous deadlines: these tests check what Route answers, not how fast, and a busy
    # 2-core machine can stall a process for longer than the production deadlines. The
    # degradation tests stop processes, which fails calls at once whatever the deadline.
    env.update(REDIS_URL=redis_url, TAGROUTER_LOG_LEVEL="WARNING", TAGROUTER_METRICS_PORT="0",
               TAGROUTER_TAGGER_TIMEOUT_MS="5000", TAGROUTER_SCORER_TIMEOUT_MS="5000", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@contextlib.contextmanager
def running_stack(redis_url: str, ready_check: bool = True, **extra: str):
    """Tagger, scorer and router as three real processes; yields {name: Process}.

    ready_check=False skips the plaintext health wait (for servers that speak TLS only).
    """
    env = service_env(redis_url, **extra)
    tagger = Process("tagger", env)
    scorer = Process("scorer", dict(env, FEEDBACK_TAGGER_ADDR=tagger.address))  # Feedback may send a query
    router = Process("router", env, "--tagger-addr", tagger.address, "--scorer-addr", scorer.address)
    procs = {"tagger": tagger, "scorer": scorer, "router": router}
    try:
        if ready_check:
            wait_serving(router.address, "tagrouter.router.v1.RouterService")
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def wipe_tagrouter_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter("tagrouter:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def stack(redis_url):
    wipe_tagrouter_keys(redis_url)
    with running_stack(redis_url) as procs:
        yield procs


@pytest.fixture(scope="module")
def router_stub(stack):
    from tagrouter.router.v1 import router_pb2_grpc

    with grpc.insecure_channel(stack["router"].address) as channel:
        yield router_pb2_grpc.RouterServiceStub(channel)


def needs_shared(path: Path = SUITES):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is absent")
