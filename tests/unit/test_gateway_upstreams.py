"""The gateway's upstreams file: JSON or YAML, checked at start-up with errors naming the field."""
import pytest

from services.common.settings import ConfigError, GatewaySettings
from services.gateway.upstreams import load

YAML = """
models:
  gpt4_1106_preview: {base_url: "http://127.0.0.1:9/v1/", model: gpt-4, api_key_env: KEY,
                      input_usd_per_mtok: 10, output_usd_per_mtok: 30}
  gemma-7b-it: {base_url: "http://127.0.0.1:9/v1", model: gemma}
aliases: [auto, router]
default_model: gemma-7b-it
"""


def test_yaml_with_aliases_default_and_prices(tmp_path):
    path = tmp_path / "up.yaml"
    path.write_text(YAML)
    up = load(path, {"KEY": "sk-test"})
    assert up.pool == ["gpt4_1106_preview", "gemma-7b-it"] and up.aliases == ("auto", "router")
    assert up.default_model == "gemma-7b-it"
    gpt4 = up.models["gpt4_1106_preview"]
    assert gpt4.base_url == "http://127.0.0.1:9/v1" and gpt4.api_key == "sk-test" and "sk-test" not in repr(gpt4)
    assert gpt4.cost_usd({"prompt_tokens": 1000, "completion_tokens": 100}) == pytest.approx(0.013)
    assert up.models["gemma-7b-it"].cost_usd({"prompt_tokens": 1, "completion_tokens": 1}) is None


def test_the_bare_mapping_form(tmp_path):
    path = tmp_path / "up.json"
    path.write_text('{"gemma-7b-it": {"base_url": "https://example.invalid/v1", "model": "gemma"}}')
    up = load(path, {})
    assert (up.pool, up.aliases, up.default_model) == (["gemma-7b-it"], ("auto",), "gemma-7b-it")


@pytest.mark.parametrize("text, field", [
    ("[1, 2]", "top level"),
    ("models: {}", "'models'"),
    ("models: {m: {base_url: 'ftp://x', model: a}}", "models.m.base_url"),
    ("models: {m: {base_url: 'http://x', model: ''}}", "models.m.model"),
    ("models: {m: {base_url: 'http://x', model: a, api_key_env: NOPE}}", "models.m.api_key_env"),
    ("models: {m: {base_url: 'http://x', model: a, input_usd_per_mtok: -1}}", "models.m.input_usd_per_mtok"),
    ("models: {m: {base_url: 'http://x', model: a, colour: red}}", "'colour'"),
    ("models: {m: {base_url: 'http://x', model: a}}\naliases: [m]", "both an alias and a pool model"),
    ("models: {m: {base_url: 'http://x', model: a}}\ndefault_model: z", "default_model"),
    ("models: [", "does not parse"),
])
def test_bad_files_are_named(tmp_path, text, field):
    path = tmp_path / "up.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.replace("[", r"\[")):
        load(path, {})


def test_settings_need_the_router_and_an_existing_file(tmp_path):
    with pytest.raises(ConfigError, match="TAGROUTER_UPSTREAMS is required"):
        GatewaySettings.from_env({"ROUTER_ADDR": "a:1"})
    with pytest.raises(ConfigError, match="no such file"):
        GatewaySettings.from_env({"ROUTER_ADDR": "a:1", "TAGROUTER_UPSTREAMS": str(tmp_path / "none.yaml")})
    (tmp_path / "u.yaml").write_text("x: 1")
    with pytest.raises(ConfigError, match="ROUTER_ADDR"):
        GatewaySettings.from_env({"TAGROUTER_UPSTREAMS": str(tmp_path / "u.yaml")})
