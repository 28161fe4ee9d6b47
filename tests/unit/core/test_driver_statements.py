"""Hand-written statements run through the driver (core.platform.db.driver_fetch) belong to the session's transaction:
a rollback undoes them and a commit keeps them, on SQLite and Postgres alike."""

from __future__ import annotations

from sqlalchemy import select

from ains.core.platform.db import Database, driver_fetch
from ains.models.tables import Client

INSERT = (
    "INSERT INTO clients (id, name, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)",
    "INSERT INTO clients (id, name, created_at) VALUES ($1, $2, now())",
)


async def _insert(db: Database, client_id: str, *, commit: bool) -> None:
    sqlite_sql, postgres_sql = INSERT
    params = [client_id, client_id]
    session = db.sessions()
    try:
        # The very first statement of the transaction goes to the driver: nothing has begun it through
        # SQLAlchemy yet (its asyncpg adapter sends BEGIN lazily, before its own first statement).
        await driver_fetch(session, sqlite=(sqlite_sql, params), postgres=(postgres_sql, params))
        if commit:
            await session.commit()
        else:
            await session.rollback()
    finally:
        await session.close()


async def test_a_rolled_back_driver_statement_leaves_nothing_and_a_committed_one_stays(db: Database) -> None:
    await _insert(db, "rolled-back", commit=False)
    await _insert(db, "committed", commit=True)
    async with db.session() as session:
        ids = (await session.execute(select(Client.id).order_by(Client.id))).scalars().all()
    assert ids == ["committed"]
