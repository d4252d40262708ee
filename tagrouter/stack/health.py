"""Client side of the health service: wait until a server says SERVING (the launcher, bench, tests)."""
from __future__ import annotations

import subprocess
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class ServiceExited(RuntimeError):
    """A service's process ended while it was starting (`returncode`: its exit code)."""

    def __init__(self, returncode: int):
        super().__init__(f"a service exited with code {returncode} while starting")
        self.returncode = returncode


def fail_if_exited(processes: tuple[subprocess.Popen, ...]) -> None:
    """ServiceExited naming the exit code when one of `processes` has exited while starting."""
    for p in processes:
        if p.poll() is not None:
            raise ServiceExited(p.returncode)


def wait_serving(address: str, service: str = "", timeout: float = 30.0,
                 processes: tuple[subprocess.Popen, ...] = ()) -> None:
    """Blocks until `address` reports SERVING for `service`; fails early if one of `processes` exits."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            fail_if_exited(processes)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{address} ({service or 'server'}) not SERVING after {timeout}s")


def wait_ready_http(url: str, timeout: float = 30.0, processes: tuple[subprocess.Popen, ...] = ()) -> None:
    """Blocks until GET `url` answers 200 (the gateway's /readyz, a service's /metrics); fails early if
    one of `processes` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fail_if_exited(processes)
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:  # refused, 503 (HTTPError), timed out
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")
