"""Where the client finds the API and its key: arguments, then the environment (``AINS_URL``,
``AINS_API_KEY``, ``AINS_PROFILE``), then a profile in the config file, then the local default.

The config file (``AINS_CONFIG_FILE``, default ``~/.config/ains/config.toml``) holds named profiles::

    [profiles.default]
    url = "http://127.0.0.1:8000"
    api_key = "ains_..."

    [profiles.prod]
    url = "https://ains.example.com"
    api_key = "ains_..."
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG_FILE = Path("~/.config/ains/config.toml")
DEFAULT_PROFILE = "default"


class ConfigError(ValueError):
    """The profile file is unreadable or names no such profile."""


class _Environment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AINS_", extra="ignore")

    url: str | None = None
    api_key: str | None = None
    profile: str | None = None
    config_file: Path | None = None
    agent_signing_secret: str | None = None


@dataclass(frozen=True)
class ClientConfig:
    url: str
    api_key: str | None


def _profile(path: Path, name: str, required: bool) -> dict[str, str]:
    path = path.expanduser()
    if not path.exists():
        if required:
            raise ConfigError(f"profile {name!r} requested but the config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    profiles = data.get("profiles", {})
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    if profile is None:
        if required:
            known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) and profiles else "none"
            raise ConfigError(f"no profile {name!r} in {path} (profiles: {known})")
        return {}
    if not isinstance(profile, dict):
        raise ConfigError(f"profile {name!r} in {path} must be a table")
    return {k: str(v) for k, v in profile.items() if k in {"url", "api_key"}}


def resolve_config(
    url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    config_file: Path | None = None,
) -> ClientConfig:
    env = _Environment()
    name = profile or env.profile
    stored = _profile(config_file or env.config_file or DEFAULT_CONFIG_FILE, name or DEFAULT_PROFILE, name is not None)
    return ClientConfig(
        url=(url or env.url or stored.get("url") or DEFAULT_URL).rstrip("/"),
        api_key=api_key or env.api_key or stored.get("api_key"),
    )


def agent_signing_secret(given: str | None = None) -> str:
    """The secret agents verify AINS's calls with: the argument, else ``AINS_AGENT_SIGNING_SECRET``."""
    secret = given or _Environment().agent_signing_secret
    if not secret:
        raise ConfigError("no agent signing secret: pass one or set AINS_AGENT_SIGNING_SECRET")
    return secret
