"""A real webhook receiver on 127.0.0.1 that records every request and answers as told."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import serve


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0  # answer 503 to this many requests, then 200
    always_fail: bool = False
    stall_first: int = 0  # hold this many requests for stall_seconds before answering 200
    stall_seconds: float = 0.0
    requests: list[Received] = field(default_factory=list)

    def succeeded(self) -> list[Received]:
        return [r for r in self.requests if r.answered == 200]

    async def wait_for(self, count: int, timeout: float = 15.0, *, ok: bool = True) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.succeeded() if ok else self.requests
            if len(seen) >= count:
                return seen
            await asyncio.sleep(0.05)
        raise AssertionError(f"receiver got {len(self.requests)} requests, wanted {count} (ok={ok})")


@asynccontextmanager
async def webhook_receiver(
    fail_first: int = 0, always_fail: bool = False, stall_first: int = 0, stall_seconds: float = 0.0
) -> AsyncIterator[Receiver]:
    receiver = Receiver(
        fail_first=fail_first, always_fail=always_fail, stall_first=stall_first, stall_seconds=stall_seconds
    )
    stalled = 0

    async def hook(request: Request) -> JSONResponse:
        nonlocal stalled
        body = await request.body()
        if stalled < receiver.stall_first:  # recorded as unanswered (0): the sender is meant to give up first
            stalled += 1
            receiver.requests.append(Received(body=body, headers=dict(request.headers), answered=0))
            await asyncio.sleep(receiver.stall_seconds)
            return JSONResponse({"ok": True})
        failing = receiver.always_fail or len(receiver.requests) < receiver.fail_first
        status = 503 if failing else 200
        receiver.requests.append(Received(body=body, headers=dict(request.headers), answered=status))
        return JSONResponse({"ok": not failing}, status_code=status)

    server = await serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    receiver.url = f"{server.url}/hook"
    try:
        yield receiver
    finally:
        await server.stop()
