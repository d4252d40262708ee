"""Shared fixtures: a real Redis, real gRPC servers on free ports, the real ONNX model.

REDIS_URL, when set, is used as it is (the tests write and delete `tagrouter:*` keys (`{tagrouter}:*`) in its
database: point it at a scratch database); otherwise a private redis-server is started.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis

from services.scorer.keys import KEY_PATTERN
from tagrouter.stack import LocalStack, ServiceProcess
from tagrouter.stack.embedded_redis import EmbeddedRedis
from tagrouter.stack.health import wait_serving  # noqa: F401 - tests import it from here

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SUITES = SHARED / "data" / "suites"
TAGROUTER = [sys.executable, "-m", "tagrouter.cli"]


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: needs ../shared/data (skipped where it is absent)")
    config.addinivalue_line("markers", "redis_modes: runs against one Redis server, Sentinel and Cluster "
                                       "(tests/integration/test_redis_modes.py; skipped, saying so, without the binaries)")


def pytest_report_header(config):
    from tagrouter.stack.redis_topologies import binaries_missing

    missing = binaries_missing()
    skipped = "" if missing is None else f" (sentinel and cluster SKIPPED: {missing})"
    return f"redis modes: standalone, sentinel, cluster{skipped}"


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
        keys = list(client.scan_iter(KEY_PATTERN, count=1000))
        if keys:
            client.delete(*keys)

    wipe()
    yield client
    wipe()
    client.close()


def Process(service: str, env: dict[str, str], *args: str, port: int | None = None) -> ServiceProcess:
    """One service as a real process on a free port (its output kept for `.output()`)."""
    output = subprocess.DEVNULL if os.environ.get("TAGROUTER_TEST_QUIET") else subprocess.PIPE
    return ServiceProcess(service, env, *args, port=port, output=output, cwd=REPO_ROOT)


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
    """Tagger, scorer and router as three real processes (the project's one launcher); yields
    {name: ServiceProcess}. ready_check=False skips the plaintext health wait (for TLS-only servers)."""
    stack = LocalStack(env=service_env(redis_url, **extra), quiet=bool(os.environ.get("TAGROUTER_TEST_QUIET")))
    with contextlib.closing(stack.start(wait=ready_check)):
        yield stack.processes


def wipe_tagrouter_keys(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(KEY_PATTERN, count=1000))
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
