"""Shared fixtures: a real Redis, real gRPC servers on free ports, the real ONNX model.

Every test that uses `redis_url` runs against one Redis server, Sentinel and Cluster (tests/redis_matrix.py;
`standalone_only` marks the exceptions, with the reason). REDIS_URL, when set, is used as it is (the tests write
and delete `{tagrouter}:*` keys in its database: point it at a scratch database); otherwise each mode's Redis
is started once per session on loopback.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tagrouter.stack import LocalStack, ServiceProcess
from tagrouter.stack.health import wait_serving  # noqa: F401 - tests import it from here
from tests import redis_matrix
from tests.redis_matrix import sync_client  # noqa: F401 - tests import it from here

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SUITES = SHARED / "data" / "suites"
TAGROUTER = [sys.executable, "-m", "tagrouter.cli"]


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: needs ../shared/data (skipped where it is absent)")
    config.addinivalue_line("markers", "redis_modes: runs against one Redis server, Sentinel and Cluster "
                                       "(tests/integration/test_redis_modes.py; skipped, saying so, without the binaries)")
    config.addinivalue_line("markers", "redis_sentinel: the case of a test run against a Sentinel-managed primary "
                                       "(tests/redis_matrix.py)")
    config.addinivalue_line("markers", "redis_cluster: the case of a test run against a Redis Cluster "
                                       "(tests/redis_matrix.py)")
    config.addinivalue_line("markers", "standalone_only(reason): runs against one Redis server only, not the "
                                       "Sentinel and Cluster cases of the matrix")


def pytest_report_header(config):
    return redis_matrix.header()


def pytest_generate_tests(metafunc):
    """Each test that uses `redis_url` (directly or through a fixture) once per Redis mode."""
    if "redis_url" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("standalone_only") is not None
        metafunc.parametrize("redis_mode", redis_matrix.params(standalone_only=only), indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def redis_mode(request):
    return request.param


@pytest.fixture(scope="session")
def redis_url(redis_mode):
    """The session's Redis of that mode (pytest groups the tests by mode, so each topology starts once)."""
    with redis_matrix.server(redis_mode) as url:
        yield url


@pytest.fixture
def clean_redis(redis_url):
    """A client (bytes, any mode) on a Redis with no tagrouter keys, before and after the test."""
    client = sync_client(redis_url)
    redis_matrix.wipe(client)
    yield client
    redis_matrix.wipe(client)
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
    {name: ServiceProcess}. ready_check=False skips the plaintext health wait (for TLS-only servers) and
    waits for each service's plaintext /metrics instead, so that a port taken at start is still retried."""
    stack = LocalStack(env=service_env(redis_url, **extra), quiet=bool(os.environ.get("TAGROUTER_TEST_QUIET")),
                       metrics=not ready_check)
    with contextlib.closing(stack.start(wait=ready_check)):
        yield stack.processes


def wipe_tagrouter_keys(redis_url: str) -> None:
    client = sync_client(redis_url)
    try:
        redis_matrix.wipe(client)
    finally:
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
