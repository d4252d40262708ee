"""REDIS_URL's three forms, parsed and checked at start-up (no Redis client here: see
services/scorer/connection.py, which builds one from a RedisTarget).

    redis://[[USER]:PASSWORD@]HOST:PORT[/DB]        one server (also rediss:// for TLS, unix://)
    redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB]
                                                    the primary that these sentinels name
    redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]
                                                    a Redis Cluster, through any of these seed nodes

`rediss+sentinel://` and `rediss+cluster://` speak TLS to the Redis nodes (and to the sentinels).
The password is the Redis nodes' (`requirepass`); error messages never repeat it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

STANDALONE, SENTINEL, CLUSTER = "standalone", "sentinel", "cluster"
_SCHEMES = {"redis": (STANDALONE, False), "rediss": (STANDALONE, True), "unix": (STANDALONE, False),
            "redis+sentinel": (SENTINEL, False), "rediss+sentinel": (SENTINEL, True),
            "redis+cluster": (CLUSTER, False), "rediss+cluster": (CLUSTER, True)}
MAX_HOSTS = 32


class RedisUrlError(ValueError):
    """REDIS_URL does not parse; the message never holds the password."""


@dataclass(frozen=True)
class RedisTarget:
    mode: str  # STANDALONE, SENTINEL or CLUSTER
    url: str = field(repr=False)  # the whole URL (standalone clients are built from it)
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels or seed nodes
    service_name: str = ""  # Sentinel's name of the primary
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    tls: bool = False


def parse(url: str) -> RedisTarget:
    """The target REDIS_URL names; RedisUrlError when it is not one of the three forms."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise RedisUrlError("must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
                            "redis+cluster:// or rediss+cluster://")
    mode, tls = _SCHEMES[scheme.lower()]
    if mode == STANDALONE:
        _check_standalone(url, scheme.lower())
        return RedisTarget(STANDALONE, url, tls=tls)
    userinfo, at, rest = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else unquote(user)) or None
        if not colon:
            username = None
    netloc, _, path = rest.partition("/")
    hosts = tuple(_host_port(item) for item in netloc.split(","))
    if not hosts or len(hosts) > MAX_HOSTS:
        raise RedisUrlError(f"must name 1 to {MAX_HOSTS} HOST:PORT addresses separated by commas after {scheme}://")
    parts = [p for p in path.split("/") if p]
    if mode == CLUSTER:
        if parts:
            raise RedisUrlError(f"must have no path after the seed nodes of {scheme}:// (a cluster has only database 0)")
        return RedisTarget(CLUSTER, url, hosts, password=password, username=username, tls=tls)
    if not parts or len(parts) > 2:
        raise RedisUrlError(f"must be {scheme}://HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB]: the service name is "
                            "missing or the path is too long")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) > 15:
            raise RedisUrlError(f"must end in /SERVICE_NAME/DB with DB a number from 0 to 15, not {parts[1]!r}")
        db = int(parts[1])
    return RedisTarget(SENTINEL, url, hosts, unquote(parts[0]), db, password, username, tls)


def _check_standalone(url: str, scheme: str) -> None:
    """redis:// and rediss://: a port and a database redis-py would take (a port out of range, or a
    database past 15 or not a number, failed at the first command, or fell back to 0 unsaid)."""
    if scheme == "unix":
        return
    parsed = urlsplit(url)
    try:
        parsed.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        raise RedisUrlError("has a port that is not a number from 1 to 65535") from None
    db = parsed.path.strip("/")
    if db and (not db.isdigit() or int(db) > 15):
        raise RedisUrlError(f"must end in /DB with DB a number from 0 to 15, not {db!r}")


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisUrlError(f"must list HOST:PORT addresses: {item.strip()!r} is not HOST:PORT with a port from 1 to 65535")
    return host, int(port)
