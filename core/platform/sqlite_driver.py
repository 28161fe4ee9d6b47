"""SQLAlchemy's aiosqlite adapter with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's own thread, and each call is a round trip through a queue and the
event loop's self-pipe (about 70 µs of CPU on this machine's 2 cores). SQLAlchemy's stock adapter makes four per
statement (open a cursor, execute, fetch, close); a task's path through the worker ran ~90 of them. Here a
statement's whole cursor lifecycle runs as one function on that thread and the adapter keeps the results, so
SQLAlchemy, aiosqlite and sqlite3 behave exactly as before, with a quarter of the hops. The pool's rollback when
a connection is returned is skipped when there is no transaction to roll back (after every commit and rollback).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid


class _Calls:
    """Statements queued to a connection's thread and finished there. Each count is written by one thread only
    (issued by the event loop's, finished by aiosqlite's), so their difference is exact without a lock."""

    __slots__ = ("finished", "issued")

    def __init__(self) -> None:
        self.issued = 0
        self.finished = 0


def _counted(calls: _Calls, function: Any, *args: Any) -> _Outcome:
    try:
        outcome: _Outcome = function(*args)
        return outcome
    finally:
        calls.finished += 1


def _execute(conn: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """Runs on aiosqlite's thread: the statement and everything SQLAlchemy will ask of its cursor."""
    cursor = conn.cursor()
    try:
        cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _executemany(conn: sqlite3.Connection, operation: str, rows: Sequence[Any]) -> _Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, rows)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor: no aiosqlite cursor is kept, results are fetched in the statement's own hop."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # nothing to open, nothing to close
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # every row is fetched at once

    async def _async_soft_close(self) -> None:
        pass  # already closed, results buffered

    async def _run(self, function: Any, operation: Any, parameters: Any) -> None:
        driver: Any = self._connection  # aiosqlite.Connection; _execute queues a call to its thread
        calls: _Calls = driver.ains_calls
        async with self._adapt_connection._execute_mutex:
            calls.issued += 1
            outcome: _Outcome = await driver._execute(_counted, calls, function, driver._conn, operation, parameters)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(_execute, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(_executemany, operation, seq_of_parameters)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]  # a subclass of the stock cursor

    def rollback(self) -> None:
        driver: Any = self._connection
        calls: _Calls = driver.ains_calls
        # Nothing to roll back: no statement is still running on the thread (one cancelled mid-flight may yet
        # open a transaction, so then the rollback is queued behind it as usual) and sqlite3 is in autocommit.
        # The pool's reset after every commit and every closed read is such a call.
        if calls.issued == calls.finished and driver._connection is not None and not driver._conn.in_transaction:
            return
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """Pass as ``module=`` to ``create_async_engine`` for a ``sqlite+aiosqlite`` URL."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        connection.__class__ = OneHopConnection  # same slots; only the cursor class and rollback differ
        connection._connection.ains_calls = _Calls()
        return connection


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
