"""The one-hop aiosqlite adapter (core/platform/sqlite_driver.py): same results as the stock adapter, fewer thread hops,
and a connection never goes back to the pool inside a transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ains.core.platform.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)"))
    yield database
    await database.dispose()


async def _calls(db: Database) -> int:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        issued: int = raw.driver_connection.ains_calls.issued  # type: ignore[union-attr]
        return issued


async def test_rows_rowcount_and_lastrowid_come_back_as_with_the_stock_adapter(db: Database) -> None:
    async with db.transaction() as session:
        inserted = await session.execute(text("INSERT INTO item (name) VALUES (:n)"), {"n": "a"})
        assert inserted.lastrowid == 1
        await session.execute(text("INSERT INTO item (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}])  # executemany
        updated = await session.execute(text("UPDATE item SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
    async with db.session() as session:
        rows = (await session.execute(text("SELECT id, name FROM item ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        assert (await session.execute(text("SELECT name FROM item WHERE id = 9"))).first() is None


async def test_a_statement_is_one_hop_to_the_driver_thread(db: Database) -> None:
    before = await _calls(db)
    async with db.session() as session:
        await session.execute(text("SELECT 1"))  # BEGIN and the SELECT; no cursor open/fetch/close round trips
    assert await _calls(db) - before <= 3  # the BEGIN, the SELECT, and _calls' own connect


async def test_a_failed_transaction_is_rolled_back_and_releases_the_write_lock(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO item (name) VALUES ('lost')"))
            raise RuntimeError("boom")
    async with db.transaction() as session:  # would wait out the busy timeout if the lock were still held
        await session.execute(text("INSERT INTO item (name) VALUES ('kept')"))
    async with db.session() as session:
        names = (await session.execute(text("SELECT name FROM item"))).scalars().all()
    assert names == ["kept"]


async def test_a_connection_returned_inside_a_transaction_is_rolled_back_by_the_pool(db: Database) -> None:
    conn = await db.engine.connect()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute("BEGIN IMMEDIATE")  # past SQLAlchemy: only the pool's reset can end it
    await driver.execute("INSERT INTO item (name) VALUES ('uncommitted')")
    assert driver._conn.in_transaction
    await conn.close()
    assert not driver._conn.in_transaction
    async with db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM item"))).scalar_one() == 0
