"""A short-lived, per-process cache of registry read responses: GET /v1/agents and GET /v1/trust/leaderboard.

Both are global views of the registry: their JSON depends only on the (validated) query, never on the caller
(``agents:read`` and ``admin`` see the same agents), so one body serves every caller. Only the body is cached,
and only after the route's dependencies ran: authentication, scopes and the rate limit apply to every request.

Freshness (``AINS_REGISTRY_READ_CACHE_TTL_SECONDS``, default 1 s, 0 disables):

- A body is served for at most the TTL after the read that produced it began, so live load
  (``running_tasks``), trust and whatever workers or other API replicas write show within the TTL.
- Every agent or trust write served by this process clears the cache once it has committed (read-your-writes
  on the same process). A read that began before the clear never stores its result.
- ``Cache-Control: no-cache`` (or ``max-age=0``) on the request reads the registry again and refreshes the
  entry; ``no-store`` reads it again and leaves the cache alone.
- Concurrent misses for one key wait for a single read (no thundering herd). The read runs as its own task,
  so a caller that goes away does not cancel it for the others.
- At most ``max_entries`` bodies and ``max_bytes`` in total; the oldest are dropped first.

Responses say so: ``Cache-Control: private, max-age=<TTL>`` (``no-store`` when disabled; ``private``
because the request carried credentials), and ``Age`` when the body came from the cache.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request, Response

from ains.core.platform.settings import Settings

MAX_ENTRIES = 256
MAX_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class _Entry:
    body: bytes
    read_at: float  # time.monotonic() when the read producing the body began


def cache_key(path: str, params: Iterable[tuple[str, str | int | None]]) -> str:
    """``path?sorted&params``, leaving out the ones not given, so equivalent queries share an entry."""
    present = sorted((name, str(value)) for name, value in params if value is not None)
    return f"{path}?{urlencode(present)}" if present else path


class RegistryReadCache:
    def __init__(self, settings: Settings, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        # The TTL is read from the settings on each request, so tests can change it on a running app.
        self._settings = settings
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, asyncio.Task[bytes]] = {}
        self._generation = 0

    @property
    def ttl(self) -> float:
        return self._settings.registry_read_cache_ttl_seconds

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self) -> None:
        """Forget everything, including reads in flight: call after a registry write has committed."""
        self._generation += 1
        self._entries.clear()
        self._bytes = 0
        self._inflight.clear()  # their callers still get them; later requests start a new read

    async def get(
        self, key: str, read: Callable[[], Awaitable[bytes]], *, refresh: bool = False, store: bool = True
    ) -> tuple[bytes, float | None]:
        """The body for ``key`` and its age in seconds when it came from the cache (None when read for this
        request). ``refresh`` reads again whatever is cached; ``store=False`` reads without touching the cache."""
        ttl = self.ttl
        if ttl <= 0 or not store:
            return await read(), None
        now = time.monotonic()
        if not refresh:
            entry = self._entries.get(key)
            if entry is not None:
                age = now - entry.read_at
                if age < ttl:
                    return entry.body, age
                self._drop(key)
            running = self._inflight.get(key)
            if running is not None:
                return await asyncio.shield(running), None
        return await asyncio.shield(self._start(key, read, now)), None

    async def respond(
        self, request: Request, key: str, read: Callable[[], Awaitable[bytes]], media_type: str = "application/json"
    ) -> Response:
        """The route's response: cached per the request's ``Cache-Control``, with the matching headers."""
        directives = _directives(request.headers.get("cache-control", ""))
        refresh = "no-cache" in directives or "max-age=0" in directives
        ttl = self.ttl
        body, age = await self.get(key, read, refresh=refresh, store="no-store" not in directives)
        headers = {"Cache-Control": f"private, max-age={math.floor(ttl)}" if ttl > 0 else "no-store"}
        if age is not None:
            headers["Age"] = str(math.floor(age))
        return Response(body, media_type=media_type, headers=headers)

    def _start(self, key: str, read: Callable[[], Awaitable[bytes]], began: float) -> asyncio.Task[bytes]:
        generation = self._generation

        async def run() -> bytes:
            return await read()

        task = asyncio.create_task(run(), name=f"registry-read {key}")
        self._inflight[key] = task

        def finished(done: asyncio.Task[bytes]) -> None:
            if self._inflight.get(key) is done:
                del self._inflight[key]
            if done.cancelled() or done.exception() is not None:  # retrieved here: never "never retrieved"
                return
            if generation == self._generation:  # no write committed since the read began
                self._store(key, done.result(), began)

        task.add_done_callback(finished)
        return task

    def _store(self, key: str, body: bytes, read_at: float) -> None:
        current = self._entries.get(key)
        if current is not None and current.read_at > read_at:
            return  # a later read (a refresh) already stored a newer body
        if len(body) > self.max_bytes:
            return
        if current is not None:
            self._drop(key)
        self._entries[key] = _Entry(body, read_at)
        self._bytes += len(body)
        # Oldest first: expired bodies, then whatever exceeds the bounds.
        horizon = time.monotonic() - self.ttl
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if len(self._entries) <= self.max_entries and self._bytes <= self.max_bytes and oldest.read_at > horizon:
                break
            self._drop(oldest_key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)


def _directives(value: str) -> set[str]:
    return {part.strip().lower().replace(" ", "") for part in value.split(",") if part.strip()}
