"""Wire models for API keys and clients."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from ains.models.common import StrictModel


class Scope(StrEnum):
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    ADMIN = "admin"


DEFAULT_CLIENT_SCOPES = [Scope.TASKS_READ, Scope.TASKS_WRITE, Scope.AGENTS_READ]
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class ApiKeyCreate(StrictModel):
    client_id: str = Field(pattern=CLIENT_ID_PATTERN, description="Client that owns the key; created if new.")
    name: str = Field(default="default", min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=lambda: list(DEFAULT_CLIENT_SCOPES), min_length=1)
    expires_at: datetime | None = Field(default=None, description="UTC expiry; none means never.")
    rate_limit_per_minute: int | None = Field(strict=True, default=None, ge=1, le=1_000_000)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("expires_at must include a time zone, e.g. 2030-01-01T00:00:00Z")
        if value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return value


class ApiKeyView(BaseModel):
    id: str
    client_id: str
    name: str
    prefix: str
    scopes: list[Scope]
    rate_limit_per_minute: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="The secret key. Shown once; only its SHA-256 hash is stored.")
