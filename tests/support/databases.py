"""Throwaway registry databases: a SQLite file, or a fresh Postgres database created and dropped per use."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from ains.core.platform.migrate import upgrade

POSTGRES_ENV = "AINS_TEST_DATABASE_URL"
REDIS_ENV = "AINS_TEST_REDIS_URL"


BACKENDS = ("sqlite", "postgres")


def backends() -> list[str]:
    return list(BACKENDS) if os.environ.get(POSTGRES_ENV) else ["sqlite"]


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(backend: str, tmp_dir: Path) -> AsyncIterator[str]:
    """A migrated, empty database URL for ``backend``; removed afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_dir / f'ains-{uuid.uuid4().hex[:8]}.db'}"
        await upgrade(url)
        yield url
        return
    admin_url = os.environ[POSTGRES_ENV]
    name = f"ains_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade(url)
        yield url
    finally:
        conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
