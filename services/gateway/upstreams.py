"""The gateway's upstreams file: which URL and upstream model serve each pool model.

JSON or YAML, either the mapping itself or with optional `aliases` and `default_model` beside it:

    models:                        # pool model (as the router names it) -> its upstream
      gpt4_1106_preview: {base_url: https://api.openai.com/v1, model: gpt-4-1106-preview,
                          api_key_env: OPENAI_API_KEY, input_usd_per_mtok: 10, output_usd_per_mtok: 30}
    aliases: [auto]                # names that route (default [auto])
    default_model: gpt4_1106_preview   # answers when the router cannot (default: the first model)

Read once at start-up; any problem is a ConfigError naming the file and the field.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from services.common.settings import ConfigError
from tagrouter.core import decision

MAX_FILE_BYTES = 1 << 20
MAX_MODELS = 256


@dataclass(frozen=True)
class Upstream:
    base_url: str  # ends before /chat/completions, e.g. http://127.0.0.1:8000/v1
    model: str  # the model name the upstream expects
    api_key: str | None = field(default=None, repr=False)  # from api_key_env: never logged
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None

    def cost_usd(self, usage: Mapping) -> float | None:
        """An answer's actual cost from its `usage`, when the prices are configured."""
        if self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not all(isinstance(n, int) and 0 <= n < 10**9 for n in (prompt, completion)):
            return None
        return float(decision.estimate_costs(prompt, completion, self.input_usd_per_mtok, self.output_usd_per_mtok))


@dataclass(frozen=True)
class Upstreams:
    models: dict[str, Upstream]
    aliases: tuple[str, ...] = ("auto",)
    default_model: str = ""

    @property
    def pool(self) -> list[str]:
        return list(self.models)


def load(path: Path, env: Mapping[str, str] | None = None) -> Upstreams:
    """Parse and check the file; api_key_env variables are read from `env` (default os.environ)."""
    env = os.environ if env is None else env
    where = f"upstreams file {path}"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{where}: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{where}: {len(raw)} bytes, at most {MAX_FILE_BYTES}")
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{where} does not parse: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of pool model -> upstream")
    models = data["models"] if "models" in data else data
    if not isinstance(models, dict) or not models:
        raise ConfigError(f"{where}: 'models' must map at least one pool model to its upstream")
    if len(models) > MAX_MODELS:
        raise ConfigError(f"{where}: {len(models)} models, at most {MAX_MODELS}")
    parsed = {str(name): _upstream(f"{where}: models.{name}", entry, env) for name, entry in models.items()}
    aliases = data.get("aliases", ["auto"]) if "models" in data else ["auto"]
    if not isinstance(aliases, list) or not aliases or not all(isinstance(a, str) and a for a in aliases):
        raise ConfigError(f"{where}: 'aliases' must be a non-empty list of names")
    if clash := set(aliases) & set(parsed):
        raise ConfigError(f"{where}: {', '.join(sorted(clash))} is both an alias and a pool model")
    default = data.get("default_model", next(iter(parsed))) if "models" in data else next(iter(parsed))
    if default not in parsed:
        raise ConfigError(f"{where}: default_model {default!r} is not one of the models")
    return Upstreams(parsed, tuple(dict.fromkeys(aliases)), default)


def _upstream(where: str, entry, env: Mapping[str, str]) -> Upstream:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping with base_url and model")
    unknown = set(entry) - {"base_url", "model", "api_key_env", "input_usd_per_mtok", "output_usd_per_mtok"}
    if unknown:
        raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    url = entry.get("base_url")
    parts = urlparse(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}.base_url must be an http(s) URL, not {url!r}")
    model = entry.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}.model must be the upstream's model name")
    key = None
    if (variable := entry.get("api_key_env")) is not None:
        if not isinstance(variable, str) or not env.get(variable, "").strip():
            raise ConfigError(f"{where}.api_key_env: the variable {variable!r} is not set")
        key = env[variable].strip()
    prices = [entry.get(k) for k in ("input_usd_per_mtok", "output_usd_per_mtok")]
    for name, price in zip(("input_usd_per_mtok", "output_usd_per_mtok"), prices):
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                                  or not 0 <= price <= 1e6):
            raise ConfigError(f"{where}.{name} must be a number of USD per million tokens in [0, 1e6]")
    return Upstream(url.rstrip("/"), model, key, *prices)
