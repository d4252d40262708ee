"""Sticky sessions take REDIS_URL's three forms (services/router/sessions.py through
services/common/redis_client.py), their keys spread over a Cluster, and TAGROUTER_REDIS_CA_FILE
is checked at start-up and reaches the TLS clients. No Redis is contacted: the clients are lazy."""
from __future__ import annotations

import asyncio

import certifi
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot

from services.common import redis_client, redis_url
from services.common.settings import ConfigError, RouterSettings, ScorerSettings
from services.router.sessions import SessionStore, session_key

ROUTER = {"TAGGER_ADDR": "127.0.0.1:50053", "SCORER_ADDR": "127.0.0.1:50052"}
SENTINEL = "redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/1"
CLUSTER = "redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001"


@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:6379/1", SENTINEL, CLUSTER,
                                 "rediss+cluster://127.0.0.1:7000"])
def test_the_router_takes_every_form_for_sessions(url):
    assert RouterSettings.from_env({**ROUTER, "TAGROUTER_SESSION_REDIS_URL": url}).session_redis_url == url


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "must start with redis://"),
    ("redis+sentinel://:s3cret@127.0.0.1:26379", "the service name is missing"),
    ("redis+cluster://:s3cret@127.0.0.1:7000/0", "must have no path"),
])
def test_a_bad_session_url_is_refused_at_start_up_without_its_password(url, message):
    with pytest.raises(ConfigError, match=message) as err:
        RouterSettings.from_env({**ROUTER, "TAGROUTER_SESSION_REDIS_URL": url})
    assert str(err.value).startswith("TAGROUTER_SESSION_REDIS_URL") and "s3cret" not in str(err.value)


def _store(url: str) -> SessionStore:
    return SessionStore(url, 60)


def test_sessions_get_the_client_of_each_form():
    async def build():
        stores = [_store("redis://127.0.0.1:6379/1"), _store(SENTINEL), _store(CLUSTER)]
        kinds = (type(stores[0].client.connection_pool), type(stores[1].client.connection_pool), type(stores[2].client))
        for store in stores:
            await store.close()
        return kinds

    standalone, sentinel, cluster = asyncio.run(build())
    assert not issubclass(standalone, SentinelConnectionPool)
    assert issubclass(sentinel, SentinelConnectionPool) and issubclass(cluster, RedisCluster)


def test_session_keys_are_hash_tagged_per_session_and_spread_over_slots():
    keys = [session_key(f"conversation-{i}") for i in range(64)]
    assert all(k.startswith("tagrouter:session:{") and k.endswith("}") for k in keys)
    assert "conversation-1" not in keys[1]
    assert len({key_slot(k.encode()) for k in keys}) > 32  # not one slot: sessions spread


@pytest.mark.parametrize("settings, env", [
    (ScorerSettings, {"REDIS_URL": "rediss+sentinel://127.0.0.1:26379/mymaster"}),
    (RouterSettings, {**ROUTER, "TAGROUTER_SESSION_REDIS_URL": "rediss://127.0.0.1:6380/0"}),
])
def test_the_redis_ca_file_is_read_for_tls_urls(settings, env):
    own = settings.from_env({**env, "TAGROUTER_REDIS_CA_FILE": certifi.where()})
    assert str(own.redis_ca_file) == certifi.where()


def test_a_redis_ca_file_that_is_no_pem_bundle_or_verifies_nothing_is_refused(tmp_path):
    junk = tmp_path / "ca.crt"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="TAGROUTER_REDIS_CA_FILE=.* is not a PEM CA bundle"):
        ScorerSettings.from_env({"REDIS_URL": "rediss://127.0.0.1:6380/0", "TAGROUTER_REDIS_CA_FILE": str(junk)})
    with pytest.raises(ConfigError, match="none of this service's Redis URLs uses TLS"):
        ScorerSettings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0", "TAGROUTER_REDIS_CA_FILE": certifi.where()})
    with pytest.raises(ConfigError, match="no such file"):
        ScorerSettings.from_env({"REDIS_URL": "rediss://127.0.0.1:6380/0",
                                 "TAGROUTER_REDIS_CA_FILE": str(tmp_path / "missing.crt")})


@pytest.mark.parametrize("url", ["rediss://127.0.0.1:6380/0", "rediss+sentinel://127.0.0.1:26379/mymaster",
                                 "rediss+cluster://127.0.0.1:7000"])
def test_the_ca_file_reaches_the_tls_connections(url):
    async def kwargs():
        client = redis_client.connect(redis_url.parse(url), certifi.where())
        if isinstance(client, RedisCluster):
            found = client.nodes_manager.connection_kwargs
        else:
            found = client.connection_pool.connection_kwargs
        await client.aclose()
        return found

    assert asyncio.run(kwargs())["ssl_ca_certs"] == certifi.where()
