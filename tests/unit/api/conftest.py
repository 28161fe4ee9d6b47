"""The API in this process, through httpx's ASGI transport, on a fresh SQLite registry: no uvicorn, no Temporal,
no worker. For what the API decides on its own (validation, auth, status codes); tests/e2e/api runs the stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ains.api.app import create_app
from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.models.keys import Scope
from tests.support import factories
from tests.support.databases import fresh_database
from tests.support.stack import stack_settings

# Nothing listens here: a request that would reach Temporal answers 503 instead of hanging.
NO_TEMPORAL = "127.0.0.1:9"


@dataclass
class InProcessApi:
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    admin_key: str

    async def new_key(
        self, client_id: str | None = None, scopes: list[Scope] | None = None, **extra: Any
    ) -> tuple[str, str]:
        return await factories.new_key(self.db, client_id, scopes, **extra)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with fresh_database("sqlite", tmp_path) as url:
        settings = stack_settings(url, NO_TEMPORAL, "default", redis_url="").model_copy(update={"data_dir": tmp_path})
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            db = app.state.ains.db
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ains.test") as http:
                yield InProcessApi(settings=settings, db=db, http=http, admin_key=await factories.admin_key(db))
