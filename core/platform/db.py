"""Async engine and sessions for the registry DB: SQLite (aiosqlite) by default, Postgres (asyncpg) in production."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ains.core.platform.sqlite_driver import one_hop_dbapi
from ains.core.platform.sqlite_write_turn import SqliteWriteTurn

SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITE_OPTION = "ains_write"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker process writes; busy_timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Take over transaction control from the driver so _begin_sqlite decides how each one starts.
    dbapi_connection.isolation_level = None


def _begin_sqlite(conn: Any) -> None:
    # Writers start with BEGIN IMMEDIATE: a deferred transaction that reads and then writes fails with
    # "database is locked" when another process committed in between, instead of waiting its turn.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def insert_or_merge(session: AsyncSession, entity: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for the session's backend that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


async def driver_fetch(
    session: AsyncSession, sqlite: tuple[str, Sequence[Any]], postgres: tuple[str, Sequence[Any]]
) -> list[Sequence[Any]]:
    """Rows of a hand-written statement, run by the driver itself on the session's connection (so inside its
    transaction), as (SQL, parameters) for each backend: ``?`` placeholders for SQLite, ``$1`` for Postgres.
    For a hot read or write whose query costs less than SQLAlchemy's work around it."""
    conn = await session.connection()  # on SQLite this runs BEGIN (IMMEDIATE on writers) already
    if conn.dialect.name == "postgresql":
        sql, params = postgres
        return list(await (await asyncpg_in_transaction(conn)).fetch(sql, *params))
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None, "a checked-out connection has its driver connection"
    sql, params = sqlite
    return list(await driver.execute_fetchall(sql, tuple(params)))


async def asyncpg_in_transaction(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, inside the transaction SQLAlchemy will commit or roll back.

    SQLAlchemy's asyncpg adapter sends BEGIN only before its own first statement: a statement sent to the
    driver before that would run in autocommit, outside the session's transaction (and survive a rollback).
    """
    raw = await conn.get_raw_connection()
    adapter = raw.dbapi_connection
    driver = raw.driver_connection
    assert adapter is not None and driver is not None, "a checked-out connection has its driver connection"
    if not driver.is_in_transaction():
        start = getattr(adapter, "_start_transaction", None)
        if start is not None and hasattr(adapter, "_execute_mutex"):
            async with adapter._execute_mutex:
                if getattr(adapter, "_transaction", None) is None:
                    await start()
        else:  # another SQLAlchemy version: any statement through SQLAlchemy starts it
            await conn.exec_driver_sql("SELECT 1")
    in_autocommit = getattr(adapter, "isolation_level", None) == "autocommit"
    if not driver.is_in_transaction() and not in_autocommit:
        raise RuntimeError("the driver connection is not inside the session's transaction")
    return driver


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, module=one_hop_dbapi(), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class Database:
    """Owns one engine and hands out sessions; one instance per process."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size)
        path = make_url(url).database if is_sqlite(url) else None
        turn_timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
        self._write_turn = SqliteWriteTurn(path, turn_timeout) if path and path != ":memory:" else None
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed on exit (on SQLite, in this writer's turn: core.platform.sqlite_write_turn)."""
        turn = self._write_turn.turn() if self._write_turn is not None else nullcontext()
        async with turn, self._write_sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._write_turn is not None:
            self._write_turn.close()
            self._write_turn = None
