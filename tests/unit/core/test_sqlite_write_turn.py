"""SQLite writers take turns on a lock file (core.platform.sqlite_write_turn): across processes (two instances on one file
stand in for two processes: each has its own open file), within one, and a writer cancelled while it waits never
keeps the turn."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from ains.core.platform.sqlite_write_turn import SqliteWriteTurn


async def test_a_second_process_writes_only_after_the_first_released_its_turn(tmp_path: Path) -> None:
    first, second = SqliteWriteTurn(str(tmp_path / "a.db"), 10), SqliteWriteTurn(str(tmp_path / "a.db"), 10)
    order: list[str] = []
    try:
        async with first.turn():
            waiting = asyncio.create_task(_write(second, order, "second"))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "the other process's writer waits for the turn"
            order.append("first")
        await asyncio.wait_for(waiting, 5)
        assert order == ["first", "second"]
    finally:
        first.close()
        second.close()


async def test_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    turn = SqliteWriteTurn(str(tmp_path / "b.db"), 10)
    inside = 0
    most = 0

    async def writer() -> None:
        nonlocal inside, most
        async with turn.turn():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    try:
        await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(20))), 10)
        assert most == 1
    finally:
        turn.close()


async def test_a_writer_cancelled_while_waiting_does_not_keep_the_turn(tmp_path: Path) -> None:
    turn = SqliteWriteTurn(str(tmp_path / "c.db"), 10)
    try:
        async with turn.turn():
            cancelled = asyncio.create_task(_write(turn, [], "cancelled"))
            await asyncio.sleep(0.1)
            cancelled.cancel()
            await asyncio.gather(cancelled, return_exceptions=True)
        started = time.monotonic()
        await asyncio.wait_for(_write(turn, [], "next"), 5)
        assert time.monotonic() - started < 1
    finally:
        turn.close()


async def _write(turn: SqliteWriteTurn, order: list[str], name: str) -> None:
    async with turn.turn():
        order.append(name)


async def test_a_write_inside_another_write_of_the_process_fails_as_sqlite_would_instead_of_hanging(
    tmp_path: Path,
) -> None:
    turn = SqliteWriteTurn(str(tmp_path / "d.db"), 0.3)
    try:
        async with turn.turn():
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                await asyncio.wait_for(_write(turn, [], "nested"), 5)
        await asyncio.wait_for(_write(turn, [], "after"), 5)  # the turn was handed on
    finally:
        turn.close()
