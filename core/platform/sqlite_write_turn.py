"""Writers to one SQLite file take turns on a lock file beside it, across processes.

SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps and re-tries on a back-off
of up to 100 ms. A process that writes often (the worker: a routing write and a recording write per task, back
to back when the agent answers at once) wins nearly every re-try, and another's writer (the API inserting a task)
can sleep through hundreds of milliseconds of free turns. A blocking ``flock`` wakes the next writer as soon as
the lock file is released, so turns are handed over without gaps. Within a process, writers queue on a thread
lock first (every ``flock`` of one process shares its open file, so it cannot order that process's writers).
Measured on the backlog bench's API probe (8 clients submitting while the worker runs their tasks, 2026-12-07):
README, Architecture, ``core/``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager

# Threads that may block waiting for a turn at once; writers beyond these wait for a thread, in order.
WAITING_THREADS = 16


class SqliteWriteTurn:
    def __init__(self, database_path: str, timeout_seconds: float) -> None:
        self._fd = os.open(f"{database_path}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._in_process = threading.Lock()
        self._timeout = timeout_seconds
        self._waiters = ThreadPoolExecutor(max_workers=WAITING_THREADS, thread_name_prefix="sqlite-write-turn")

    def _acquire(self) -> None:
        # Bounded like SQLite's own busy timeout, so a write started inside another write of the same process
        # fails as SQLite would have ("database is locked") instead of waiting for ever.
        if not self._in_process.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError(f"database is locked: no write turn within {self._timeout:g}s")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._in_process.release()
            raise

    def _release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._in_process.release()

    def _release_when_acquired(self, waiting: Future[None]) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            self._release()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Held from before the transaction begins until it has committed or rolled back."""
        waiting = self._waiters.submit(self._acquire)
        try:
            await asyncio.shield(asyncio.wrap_future(waiting))
        except asyncio.CancelledError:
            # The thread may still get the turn: hand it on as soon as it does.
            waiting.add_done_callback(self._release_when_acquired)
            raise
        try:
            yield
        finally:
            self._release()

    def close(self) -> None:
        self._waiters.shutdown(wait=False, cancel_futures=True)
        os.close(self._fd)
