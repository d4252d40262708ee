"""The ghz scenarios in bench/ghz stay valid: every call and field they name exists in the protos.

ghz itself cannot be installed on the CI machines; `tagrouter bench --ghz-config` runs the same
files, and these tests check them against the generated descriptors and a protoset built from
protos/ (what ghz reads when the server has reflection off).
"""
import json
import re

import pytest
from google.protobuf import descriptor_pb2, json_format, message_factory

from tagrouter.bench import GHZ_TEMPLATES, ghz_method, ghz_requests, load_ghz_config, render_ghz_data
from tagrouter.dev.protos import build_protoset
from tests.conftest import REPO_ROOT

GHZ_DIR = REPO_ROOT / "bench" / "ghz"
CONFIGS = sorted(p for p in GHZ_DIR.iterdir() if p.suffix in (".json", ".toml"))
# Every key ghz's runner.Config reads from a file; a misspelt key would be silently ignored.
GHZ_KEYS = {"proto", "protoset", "call", "cacert", "cert", "key", "skipTLS", "cname", "authority", "insecure",
            "total", "concurrency", "connections", "qps", "duration", "duration-stop", "max-duration", "timeout",
            "data", "data-file", "binary-file", "metadata", "metadata-file", "stream-interval", "output", "format",
            "connect-timeout", "keepalive", "cpus", "import-paths", "name", "tags", "reflect-metadata", "debug",
            "host", "enable-compression"}


def test_there_are_scenarios_in_both_formats_and_both_descriptor_sources():
    configs = [load_ghz_config(p) for p in CONFIGS]
    assert any(p.suffix == ".json" for p in CONFIGS) and any(p.suffix == ".toml" for p in CONFIGS)
    assert any("protoset" in c for c in configs), "a scenario for servers with reflection off"
    assert any("protoset" not in c and "proto" not in c for c in configs), "a scenario using server reflection"
    assert {c["concurrency"] for c in configs} >= {1, 8, 32}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_names_a_real_method_and_real_fields(path):
    config = load_ghz_config(path)
    assert set(config) <= GHZ_KEYS, set(config) - GHZ_KEYS
    method = ghz_method(config["call"])  # raises KeyError when the service or method does not exist
    assert config["call"] == method.full_name
    request_class = message_factory.GetMessageClass(method.input_type)
    items = config["data"] if isinstance(config["data"], list) else [config["data"]]
    for item in items:
        # ParseDict fails on an unknown field or a value of the wrong type.
        json_format.ParseDict(render_ghz_data(item, 7, 1.7e9), request_class())
    templates = set(re.findall(r"\{\{[^}]*\}\}", json.dumps(config)))
    assert templates <= set(GHZ_TEMPLATES), templates - set(GHZ_TEMPLATES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_bounded_and_targets_loopback(path):
    config = load_ghz_config(path)
    assert config["host"].startswith(("127.0.0.1:", "localhost:")) and config["insecure"] is True
    assert 0 < config["concurrency"] <= config["total"] <= 10_000
    assert config["max-duration"].endswith("s")


def test_templates_make_every_request_distinct():
    config = load_ghz_config(GHZ_DIR / "route-c8-short.json")
    queries = [r.query for r in ghz_requests(config, 50)]
    assert len(set(queries)) == 50 and not any("{{" in q for q in queries)


def test_protoset_built_from_protos_holds_every_method_the_scenarios_call(tmp_path):
    path = build_protoset(tmp_path / "tagrouter.protoset")
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    methods = {f"{f.package}.{s.name}.{m.name}": (m.input_type.lstrip("."), f.package)
               for f in files for s in f.service for m in s.method}
    messages = {f"{f.package}.{m.name}": m for f in files for m in f.message_type}
    for config in map(load_ghz_config, CONFIGS):
        assert config["call"] in methods
        request = messages[methods[config["call"]][0]]
        fields = {f.name for f in request.field}
        for item in config["data"] if isinstance(config["data"], list) else [config["data"]]:
            assert set(item) <= fields, set(item) - fields
    protoset_paths = {load_ghz_config(p)["protoset"] for p in CONFIGS if "protoset" in load_ghz_config(p)}
    assert protoset_paths == {"build/tagrouter.protoset"}, "the path `make protoset` writes"


def test_readme_shows_every_scenario():
    readme = (GHZ_DIR / "README.md").read_text()
    for path in CONFIGS:
        assert path.name in readme
