"""A fresh, migrated registry per test for each configured backend (SQLite, and Postgres when set)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ains.core.platform.db import Database
from tests.support.databases import backends, fresh_database


@pytest.fixture(params=backends())
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database(request.param, tmp_path) as url:
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()
