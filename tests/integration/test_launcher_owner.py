"""Issue 13 finding 13: SIGKILL of the launcher leaves no redis-server, service or scratch folder behind."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_py

import tagrouter.stack as stack_module
from tagrouter.stack import embedded_redis
from tests.conftest import REPO_ROOT

OWNER = """
import json, os, sys, time
from tagrouter.stack import ServiceProcess
from tagrouter.stack.embedded_redis import EmbeddedRedis
redis = EmbeddedRedis()
url = redis.start()
env = dict(os.environ, REDIS_URL=url, TAGGER_ADDR="127.0.0.1:1", SCORER_ADDR="127.0.0.1:2",
           TAGROUTER_METRICS_PORT="0", TAGROUTER_LOG_LEVEL="ERROR")
router = ServiceProcess("router", env, output=None)
print(json.dumps({"redis": redis.process.pid, "router": router.proc.pid,
                  "dir": redis._dir.name if redis._dir else None, "scratch": redis.scratch}), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_killed_owner_takes_its_redis_and_services_with_it():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(owner.stdout.readline())
        assert _alive(started["redis"]) and _alive(started["router"])
        assert started["dir"] is None and not Path(started["scratch"]).exists()  # nothing left on disk
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (_alive(started["redis"]) or _alive(started["router"])):
            time.sleep(0.1)
        assert not _alive(started["redis"]), "redis-server outlived its owner"
        assert not _alive(started["router"]), "the router outlived its launcher"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_port_taken_before_redis_binds_it_is_chosen_again(monkeypatch):
    # the race a CI run lost: the free port went to another socket between choosing and binding
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        chosen = iter([taken])
        real_free_port = embedded_redis.free_port
        monkeypatch.setattr(embedded_redis, "free_port", lambda: next(chosen, None) or real_free_port())
        server = embedded_redis.EmbeddedRedis()
        assert server.port == taken
        with server as url:
            assert server.port != taken and redis_py.Redis.from_url(url).ping()
        with pytest.raises(embedded_redis.PortTaken, match=f"could not bind port {taken}"):
            embedded_redis.EmbeddedRedis(port=taken).start()  # a port the caller chose is not changed


def test_another_server_answering_on_the_port_is_not_taken_for_ours(monkeypatch):
    # a port chosen free, then bound by another redis before ours: its PING must not pass for ours
    with embedded_redis.EmbeddedRedis() as other_url:
        other_port = int(other_url.rsplit(":", 1)[1].split("/")[0])
        chosen = iter([other_port])
        real_free_port = embedded_redis.free_port
        monkeypatch.setattr(embedded_redis, "free_port", lambda: next(chosen, None) or real_free_port())
        server = embedded_redis.EmbeddedRedis()
        with server as url:
            assert server.port != other_port
            assert redis_py.Redis.from_url(url).info("server")["process_id"] == server.process.pid


@pytest.mark.parametrize("wait", [True, False], ids=["serving", "bound only (TLS tests)"])
def test_a_service_whose_port_is_taken_makes_the_stack_choose_its_ports_again(monkeypatch, wait):
    # the router exits with EXIT_PORT_IN_USE (CI runs lost tests to it, one with wait=False: TLS-only
    # services, no plaintext health check); the stack starts again
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        chosen = iter([None, None, taken])  # the tagger's and scorer's ports as usual, the router's taken
        real_free_port = stack_module.free_port
        monkeypatch.setattr(stack_module, "free_port", lambda: next(chosen, None) or real_free_port())
        with contextlib.closing(stack_module.LocalStack(quiet=True, metrics=True).start(wait=wait)) as started:
            assert started.processes["router"].port != taken
            assert all(p.proc.poll() is None for p in started.processes.values())
