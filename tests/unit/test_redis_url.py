"""REDIS_URL's three forms, and the errors that name REDIS_URL but never the password."""
import pytest

from services.common.redis_url import CLUSTER, SENTINEL, STANDALONE, parse
from services.common.settings import ConfigError, ScorerSettings


def test_the_three_forms_parse():
    assert parse("redis://:pw@h:6379/0").mode == STANDALONE
    assert parse("rediss://h:6380").tls
    s = parse("redis+sentinel://:s3cret@a:26379,b:26380/mymaster/2")
    assert (s.mode, s.hosts, s.service_name, s.db, s.password) == (SENTINEL, (("a", 26379), ("b", 26380)),
                                                                    "mymaster", 2, "s3cret")
    c = parse("rediss+cluster://:pw@n1:7000,n2:7001")
    assert (c.mode, c.hosts, c.tls, c.password) == (CLUSTER, (("n1", 7000), ("n2", 7001)), True, "pw")
    assert "pw" not in repr(c) and "s3cret" not in repr(s)


@pytest.mark.parametrize("url, message", [
    ("localhost:6379", "must start with"),
    ("redis+sentinel://:s3cret@a:26379", "service name is missing"),
    ("redis+sentinel://:s3cret@a:26379/m/99", "DB a number from 0 to 15"),
    ("redis+sentinel://:s3cret@a:0/m", "port from 1 to 65535"),
    ("redis+cluster://:s3cret@a:7000,b/0", "not HOST:PORT"),
    ("redis+cluster://:s3cret@a:7000/0", "no path"),
])
def test_bad_urls_are_refused_at_start_up_naming_the_variable(url, message):
    with pytest.raises(ConfigError, match=message) as err:
        ScorerSettings.from_env({"REDIS_URL": url})
    assert str(err.value).startswith("REDIS_URL") and "s3cret" not in str(err.value)


def test_wait_settings_are_bounded():
    s = ScorerSettings.from_env({"REDIS_URL": "redis+cluster://a:7000"})
    assert (s.redis_wait_replicas, s.redis_wait_timeout_ms, s.watch_deltas) == (1, 500, True)
    with pytest.raises(ConfigError, match="TAGROUTER_REDIS_WAIT_TIMEOUT_MS"):
        ScorerSettings.from_env({"REDIS_URL": "redis://h", "TAGROUTER_REDIS_WAIT_TIMEOUT_MS": "5000"})
