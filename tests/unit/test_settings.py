"""Configuration is read once and invalid values are rejected at once, naming the variable."""
import os
import subprocess
import sys

import pytest

from services.common.settings import ConfigError, RouterSettings, ScorerSettings, ServerSettings, TaggerSettings


def test_defaults():
    s = ServerSettings.from_env("router", {})
    assert (s.host, s.port, s.reflection, s.grace_seconds) == ("127.0.0.1", 50051, True, 5.0)
    assert TaggerSettings.from_env({}).tags_per_level == 2


@pytest.mark.parametrize("env, name", [
    ({"TAGROUTER_PORT": "http"}, "TAGROUTER_PORT"),
    ({"TAGROUTER_PORT": "70000"}, "TAGROUTER_PORT"),
    ({"TAGROUTER_REFLECTION": "maybe"}, "TAGROUTER_REFLECTION"),
    ({"TAGROUTER_GRACE_SECONDS": "nan"}, "TAGROUTER_GRACE_SECONDS"),
    ({"TAGROUTER_LOG_LEVEL": "LOUD"}, "TAGROUTER_LOG_LEVEL"),
])
def test_bad_server_values_are_named(env, name):
    with pytest.raises(ConfigError, match=name):
        ServerSettings.from_env("router", env)


def test_router_needs_both_addresses():
    with pytest.raises(ConfigError, match="TAGGER_ADDR is required"):
        RouterSettings.from_env({"SCORER_ADDR": "a:1"})
    with pytest.raises(ConfigError, match="SCORER_ADDR"):
        RouterSettings.from_env({"TAGGER_ADDR": "a:1", "SCORER_ADDR": "nohost"})
    with pytest.raises(ConfigError, match="TAGROUTER_COST_WEIGHT"):
        RouterSettings.from_env({"TAGGER_ADDR": "a:1", "SCORER_ADDR": "b:2", "TAGROUTER_COST_WEIGHT": "-1"})
    for bad in ("-0.5", "nan"):
        with pytest.raises(ConfigError, match="TAGROUTER_QUALITY_MARGIN"):
            RouterSettings.from_env({"TAGGER_ADDR": "a:1", "SCORER_ADDR": "b:2", "TAGROUTER_QUALITY_MARGIN": bad})
    assert RouterSettings.from_env({"TAGGER_ADDR": "a:1", "SCORER_ADDR": "b:2",
                                    "TAGROUTER_QUALITY_MARGIN": "0.05"}).default_quality_margin == 0.05


def test_scorer_needs_a_redis_url_and_never_shows_it():
    with pytest.raises(ConfigError, match="REDIS_URL is required"):
        ScorerSettings.from_env({})
    with pytest.raises(ConfigError, match="REDIS_URL must start with"):
        ScorerSettings.from_env({"REDIS_URL": "localhost:6379"})
    s = ScorerSettings.from_env({"REDIS_URL": "redis://:s3cret@h:6379/0"})
    assert "s3cret" not in repr(s)


def test_readme_configuration_table_lists_every_variable_the_code_reads():
    import re

    from services.common.settings import ENVIRONMENT
    from tests.conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert table == set(ENVIRONMENT)
    code = "".join(p.read_text() for p in (REPO_ROOT / "services").rglob("*.py"))
    read = set(re.findall(r'e\.(?:str|int|float|bool|path)\("([A-Z_]+)"', code))
    assert read <= set(ENVIRONMENT), read - set(ENVIRONMENT)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: OpenBLAS starts no pool to limit")
def test_a_service_process_starts_no_openblas_thread_pool():
    # numpy's OpenBLAS pool spun on the second core under load (docs/BENCHMARKS.md); the services
    # package limits it before numpy loads. Fresh interpreters: numpy alone starts the pool, after
    # `import services` it does not.
    count = "import os, numpy; print(len(os.listdir('/proc/self/task')))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    alone = subprocess.run([sys.executable, "-c", count], env=env, capture_output=True, text=True, check=True)
    served = subprocess.run([sys.executable, "-c", "import services; " + count], env=env, capture_output=True,
                            text=True, check=True)
    assert int(alone.stdout) > 1
    assert int(served.stdout) == 1
