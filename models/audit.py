"""Wire models of the audit log: one entry per mutation under /v1."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

AuditMethod = Literal["POST", "PUT", "PATCH", "DELETE"]
AUDITED_METHODS: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditEntryView(BaseModel):
    id: int
    created_at: datetime = Field(description="When the response was sent (UTC).")
    client_id: str | None = Field(description="Client of the API key that made the request.")
    key_id: str | None = Field(description="Id of the API key (never the key itself).")
    method: str
    route: str = Field(description="Route template, e.g. /v1/agents/{agent_id}.")
    path: str = Field(description="The concrete path requested.")
    resource_id: str | None = Field(description="Id of the resource acted on, from the path or the created body.")
    status_code: int
    client_ip: str | None
    user_agent: str | None
    request_id: str = Field(description="Also in the X-Request-Id response header and the log lines.")


class AuditRecord(BaseModel):
    """What the audit middleware records for one request."""

    created_at: datetime = Field(description="When the response was sent (UTC).")
    client_id: str | None
    key_id: str | None
    method: str
    route: str
    path: str
    resource_id: str | None
    status_code: int
    client_ip: str | None
    user_agent: str | None
    request_id: str
