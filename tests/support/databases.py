"""Throwaway registry databases, for the tests and the benches: a SQLite file, or a fresh Postgres database
created and dropped per use."""

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


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy Postgres URL as asyncpg connects to it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_reachable(admin_url: str) -> bool:
    try:
        conn = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def scratch_postgres(admin_url: str, prefix: str = "ains_test") -> AsyncIterator[str]:
    """An empty Postgres database on ``admin_url``'s server (its URL), dropped afterwards even if still in use.
    The tests' and the benches' one way to get a throwaway registry on Postgres."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def fresh_database(backend: str, tmp_dir: Path) -> AsyncIterator[str]:
    """A migrated, empty database URL for ``backend``: a SQLite file in ``tmp_dir`` (the caller's to remove), or a
    Postgres database dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_dir / f'ains-{uuid.uuid4().hex[:8]}.db'}"
        await upgrade(url)
        yield url
        return
    async with scratch_postgres(os.environ[POSTGRES_ENV]) as url:
        await upgrade(url)
        yield url
