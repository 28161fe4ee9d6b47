"""Settings refuse default secrets outside development and default every listener to loopback."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ains.core.platform.settings import DEFAULT_WEBHOOK_SECRET, Settings, secret_setting_names


def _real_secrets() -> dict[str, str]:
    values = {name: f"real-{name}-0123456789abcdef" for name in secret_setting_names()}
    values["database_url"] = "postgresql+asyncpg://ains:s3cret-pw@db/ains"
    values["redis_url"] = "redis://redis:6379/0"
    return values


def test_secret_settings_cover_the_signing_secrets() -> None:
    names = secret_setting_names()
    assert {"agent_signing_secret", "callback_signing_secret", "database_url", "redis_url"} <= set(names)


# redis_url is a secret setting (it may carry a password) but has no default credentials to refuse.
@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("name", [name for name in secret_setting_names() if name != "redis_url"])
def test_refuses_to_start_outside_development_with_a_default_secret(environment: str, name: str) -> None:
    Settings(environment=environment, **_real_secrets())  # all real: fine
    default = Settings.model_fields[name].default
    if name == "database_url":
        bad = "postgresql+asyncpg://ains:ains@postgres:5432/ains"  # docker-compose.yml's credentials
    else:
        bad = default or DEFAULT_WEBHOOK_SECRET
    with pytest.raises(ValidationError, match=f"AINS_{name.upper()}"):
        Settings(environment=environment, **{**_real_secrets(), name: bad})


def test_development_accepts_the_default_secrets() -> None:
    settings = Settings(environment="development")
    assert settings.agent_signing_secret == DEFAULT_WEBHOOK_SECRET


def test_dev_stack_listeners_default_to_loopback() -> None:
    settings = Settings(environment="development")
    hosts = {
        "api": settings.api_host,
        "demo agent": settings.demo_agent_host,
        "worker metrics": settings.worker_metrics_host,
        "temporal": settings.temporal_address.rpartition(":")[0],
    }
    assert all(host == "127.0.0.1" for host in hosts.values()), hosts
