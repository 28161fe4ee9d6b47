"""Helpers for fault tests: a cuttable TCP proxy, an agent that drops the connection mid-response, DB checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from typing import Any

from sqlalchemy import func, select

from ains.core.platform.db import Database
from ains.models.tables import Agent, TaskAttempt, TrustRecord


def dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` refuses new connections and kills open ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        finally:
            self._writers -= {client_writer, upstream_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()


class MidResponseCloser:
    """A raw-socket HTTP "agent": reads the request, optionally waits, sends half a response and closes."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.received = asyncio.Event()
        self.hold = hold
        self.requests = 0
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> MidResponseCloser:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/run"
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            await reader.readexactly(length)
            self.requests += 1
            self.received.set()
            if self.hold is not None:
                await self.hold.wait()
            writer.write(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"output": {"partial'
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def ledger(db: Database, task_ids: list[str]) -> dict[str, Any]:
    """Attempt rows, trust records and agent counters for these tasks, to check nothing was double-counted."""
    async with db.session() as session:
        attempts = (await session.execute(select(TaskAttempt).where(TaskAttempt.task_id.in_(task_ids)))).scalars().all()
        records = (await session.execute(select(TrustRecord).where(TrustRecord.task_id.in_(task_ids)))).scalars().all()
        agent_ids = {a.agent_id for a in attempts}
        totals = dict(
            (await session.execute(select(Agent.id, Agent.total_tasks).where(Agent.id.in_(agent_ids)))).tuples().all()
        )
        per_pair = (
            await session.execute(
                select(TrustRecord.task_id, TrustRecord.attempt, func.count())
                .where(TrustRecord.task_id.in_(task_ids))
                .group_by(TrustRecord.task_id, TrustRecord.attempt)
                .having(func.count() > 1)
            )
        ).all()
    return {
        "attempts": [(a.task_id, a.attempt, a.agent_id, a.status) for a in attempts],
        "records": [(r.task_id, r.attempt, r.agent_id, r.event_type) for r in records],
        "duplicate_records": per_pair,
        "agent_totals": totals,
    }


def spawn_api(env_extra: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env_extra, "AINS_API_PORT": str(port), "AINS_API_HOST": "127.0.0.1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ains.workers.cli", "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait(10)
