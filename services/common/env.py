"""Typed reads of environment variables, each failing with the variable's name (ConfigError), and
the checks of the values that name files and addresses: a bad one is refused at start, not found
by the first call (a certificate that does not load was reported as a port in use)."""
from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


class Env:
    """Typed reads of one environment mapping, each failing with the variable's name."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self._env = os.environ if env is None else env

    def str(self, name: str, default: str | None = None) -> str:
        value = self._env.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def int(self, name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
        return self._number(name, default, int, "an integer", minimum, maximum)

    def float(self, name: str, default: float, minimum: float = 0.0, maximum: float = float("inf")) -> float:
        return self._number(name, default, float, "a number", minimum, maximum)

    def _number(self, name: str, default, parse, kind: str, minimum, maximum):
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not {kind}") from None
        if not minimum <= value <= maximum:  # also rejects NaN
            raise ConfigError(f"{name}={value} is outside [{minimum}, {maximum}]")
        return value

    def path(self, name: str) -> Path | None:
        """An optional path to a file that must exist."""
        raw = self._env.get(name, "").strip()
        if not raw:
            return None
        if not Path(raw).is_file():
            raise ConfigError(f"{name}={raw!r}: no such file")
        return Path(raw)

    def bool(self, name: str, default: bool) -> bool:
        raw = self._env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def check_address(name: str, value: str) -> str:
    """host:port, as a gRPC target takes it (not a URL, no spaces)."""
    host, sep, port = value.rpartition(":")
    if (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "://" in value
            or any(c.isspace() for c in value)):
        raise ConfigError(f"{name}={value!r} is not host:port")
    return value


def check_ca_bundle(name: str, path: Path | None) -> Path | None:
    """A PEM file that loads as CA certificates."""
    if path is not None:
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, ValueError, OSError) as err:
            raise ConfigError(f"{name}={str(path)!r} is not a PEM CA bundle: {err}") from None
    return path


def check_key_pair(cert: Path | None, key: Path | None) -> None:
    """TAGROUTER_TLS_CERT_FILE and TAGROUTER_TLS_KEY_FILE: both or neither, and the key the certificate's."""
    if (cert is None) != (key is None):
        raise ConfigError("TAGROUTER_TLS_CERT_FILE and TAGROUTER_TLS_KEY_FILE go together: set both or neither")
    if cert is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, ValueError, OSError) as err:
            raise ConfigError(f"TAGROUTER_TLS_CERT_FILE={str(cert)!r} and TAGROUTER_TLS_KEY_FILE={str(key)!r} "
                              f"are not a PEM certificate and its private key: {err}") from None


def check_folder_with(name: str, folder: Path, needed: str, hint: str) -> Path:
    """A folder that holds `needed`."""
    if not (folder / needed).is_file():
        raise ConfigError(f"{name}={str(folder)!r} holds no {needed} ({hint})")
    return folder
