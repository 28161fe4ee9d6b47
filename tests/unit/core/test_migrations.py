"""Migrations run on SQLite and Postgres and produce exactly the schema the models declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ains.core.platform.db import create_engine
from ains.core.platform.migrate import upgrade
from ains.models.tables import Base
from tests.support.databases import backends, fresh_database


@pytest.mark.parametrize("backend", backends())
async def test_migrations_match_models(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)  # a second run is a no-op
        engine = create_engine(url)

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        try:
            async with engine.connect() as conn:
                differences = await conn.run_sync(diff)
        finally:
            await engine.dispose()
        assert differences == []
