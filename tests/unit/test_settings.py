"""Configuration is read once and invalid values are rejected at once, naming the variable."""
import json
import os
import subprocess
import sys

import pytest

from services.common.settings import (
    DEFAULT_VOCAB_DIR,
    DEFAULT_WEIGHTS_FILE,
    SERVING_THREADS,
    ConfigError,
    RouterSettings,
    ScorerSettings,
    ServerSettings,
    TaggerSettings,
)
from tagrouter.data import HEADS_STARTER_WEIGHTS_FILE


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
    ({"TAGROUTER_ADMIN_TOKEN": "tök"}, "TAGROUTER_ADMIN_TOKEN"),  # no client could ever send it
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


def test_the_scorer_starts_from_weights_fitted_on_the_tags_of_the_configured_tagger():
    from tagrouter.core.tag_heads import TaggerHeads
    from tagrouter.core.weights import Weights, tagger_mismatch

    redis = {"REDIS_URL": "redis://h:6379/0"}
    assert ScorerSettings.from_env(redis).weights_file == DEFAULT_WEIGHTS_FILE
    assert ScorerSettings.from_env(redis | {"TAGROUTER_TAGGER_HEADS": "true"}).weights_file == HEADS_STARTER_WEIGHTS_FILE
    assert ScorerSettings.from_env(redis | {"TAGROUTER_TAGGER_HEADS": "true", "TAGROUTER_WEIGHTS_FILE":
                                            str(DEFAULT_WEIGHTS_FILE)}).weights_file == DEFAULT_WEIGHTS_FILE
    with pytest.raises(ConfigError, match="TAGROUTER_TAGGER_HEADS"):
        ScorerSettings.from_env(redis | {"TAGROUTER_TAGGER_HEADS": "maybe"})
    # each file says which tagger's tags it counted, and both count the same suite
    prototype, heads = Weights.load(DEFAULT_WEIGHTS_FILE), Weights.load(HEADS_STARTER_WEIGHTS_FILE)
    assert prototype.provenance.endswith(", prototype tagger")
    assert heads.provenance.endswith(f"tagger heads {TaggerHeads.load(DEFAULT_VOCAB_DIR).version}")
    assert prototype.model_names == heads.model_names and prototype.calibration and heads.calibration
    # the scorer says so when it serves either behind the other tagger
    assert tagger_mismatch(prototype.provenance, heads=False) is None is tagger_mismatch(heads.provenance, heads=True)
    assert "fitted on the prototype tagger's tags, but the tagger serves the trained heads" in \
        tagger_mismatch(prototype.provenance, heads=True)
    assert "starter_weights.json" in tagger_mismatch(heads.provenance, heads=False)
    assert tagger_mismatch("tagrouter fit --suite x; vocabulary v", heads=True) is None  # the tagger not named


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



_BLAS_THREADS = ("import json, numpy, threadpoolctl; from services.common.server import limit_blas_threads; "
                 "limit_blas_threads(); print(json.dumps([p['num_threads'] for p in threadpoolctl.threadpool_info() "
                 "if p['user_api'] == 'blas']))")


def _blas_threads(**env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _BLAS_THREADS], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def test_a_service_holds_numpys_blas_pool_to_one_thread():
    # its pool thread spun on the second core under load (docs/BENCHMARKS.md, "Fourth step"); numpy is
    # imported first, as in a service, so the limit is set at run time
    assert _blas_threads() == [1]


def test_an_explicit_openblas_setting_wins():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: OpenBLAS has no second thread to allow")
    assert _blas_threads(OPENBLAS_NUM_THREADS="2") == [2]


def test_the_tagger_uses_two_threads_where_there_are_two_cpus():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert TaggerSettings.from_env({}).intra_op_threads == SERVING_THREADS == (2 if cpus >= 2 else 1)
    assert TaggerSettings.from_env({"TAGROUTER_INTRA_OP_THREADS": "1"}).intra_op_threads == 1


def test_files_folders_and_addresses_are_checked_at_start(tmp_path):
    """They were found by the first call: a traceback, a router waiting forever, a silent db 0."""
    with pytest.raises(ConfigError, match="TAGROUTER_MODEL_DIR='/nope' holds no model.onnx"):
        TaggerSettings.from_env({"TAGROUTER_MODEL_DIR": "/nope"})
    with pytest.raises(ConfigError, match="TAGROUTER_VOCAB_DIR=.* holds no tags.json"):
        TaggerSettings.from_env({"TAGROUTER_VOCAB_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="TAGROUTER_WEIGHTS_FILE='/nope': no such file"):
        ScorerSettings.from_env({"REDIS_URL": "redis://h:6379/0", "TAGROUTER_WEIGHTS_FILE": "/nope"})
    for url, says in (("redis://h:99999/0", "port"), ("redis://h:6379/99", "0 to 15"), ("redis://h:6379/abc", "'abc'")):
        with pytest.raises(ConfigError, match=f"REDIS_URL .*{says}"):
            ScorerSettings.from_env({"REDIS_URL": url})
    for address in ("http://127.0.0.1:50053", "a b:50053"):
        with pytest.raises(ConfigError, match="TAGGER_ADDR=.* is not host:port"):
            RouterSettings.from_env({"TAGGER_ADDR": address, "SCORER_ADDR": "b:2"})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="TAGROUTER_TLS_CA_FILE=.* is not a PEM CA bundle"):
        RouterSettings.from_env({"TAGGER_ADDR": "a:1", "SCORER_ADDR": "b:2", "TAGROUTER_TLS_CA_FILE": str(garbage)})
