"""api.read_cache.RegistryReadCache on its own: one read per miss, never a stale store, bounded size (tests/e2e/api/test_registry_read_cache.py runs it behind the API)."""

from __future__ import annotations

import asyncio

import pytest

from ains.api.read_cache import RegistryReadCache, cache_key
from ains.core.platform.settings import Settings

LONG_TTL = 60.0


def _cache(ttl: float = LONG_TTL, **bounds: int) -> RegistryReadCache:
    return RegistryReadCache(Settings(registry_read_cache_ttl_seconds=ttl), **bounds)


class Reads:
    """A registry read that counts its calls and finishes when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.calls += 1
        n = self.calls
        await self.release.wait()
        return f"body {n}".encode()


async def test_concurrent_misses_wait_for_one_read() -> None:
    cache, read = _cache(), Reads()
    waiting = [asyncio.create_task(cache.get("/k", read)) for _ in range(10)]
    await asyncio.sleep(0)
    read.release.set()
    assert [await w for w in waiting] == [(b"body 1", None)] * 10 and read.calls == 1
    body, age = await cache.get("/k", read)
    assert body == b"body 1" and age is not None and read.calls == 1


async def test_a_caller_going_away_does_not_cancel_the_read_for_the_others() -> None:
    cache, read = _cache(), Reads()
    first = asyncio.create_task(cache.get("/k", read))
    second = asyncio.create_task(cache.get("/k", read))
    await asyncio.sleep(0)
    first.cancel()
    read.release.set()
    assert await second == (b"body 1", None) and first.cancelled()
    assert (await cache.get("/k", read))[0] == b"body 1" and read.calls == 1


async def test_a_read_begun_before_a_write_is_never_stored() -> None:
    cache, read = _cache(), Reads()
    before = asyncio.create_task(cache.get("/k", read))
    await asyncio.sleep(0)
    cache.invalidate()  # a write committed while the read was running
    after = asyncio.create_task(cache.get("/k", read))  # does not join the old read
    await asyncio.sleep(0)
    read.release.set()
    assert (await before)[0] == b"body 1" and (await asyncio.wait_for(after, 10))[0] == b"body 2"
    assert read.calls == 2
    assert (await cache.get("/k", read))[0] == b"body 2"


async def test_a_refresh_is_not_overwritten_by_an_older_read() -> None:
    cache = _cache()
    gate_old, gate_new = asyncio.Event(), asyncio.Event()

    async def old() -> bytes:
        await gate_old.wait()
        return b"old"

    async def new() -> bytes:
        await gate_new.wait()
        return b"new"

    slow = asyncio.create_task(cache.get("/k", old))
    await asyncio.sleep(0.01)
    fresh = asyncio.create_task(cache.get("/k", new, refresh=True))
    await asyncio.sleep(0)
    gate_new.set()
    assert await asyncio.wait_for(fresh, 10) == (b"new", None), "the refresh must not wait for the older read"
    gate_old.set()
    assert (await slow)[0] == b"old"
    assert (await cache.get("/k", old))[0] == b"new"


async def test_errors_are_not_stored_and_no_store_leaves_the_cache_alone() -> None:
    cache, calls = _cache(), []

    async def failing() -> bytes:
        calls.append(1)
        raise RuntimeError("database down")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await cache.get("/k", failing)
    assert len(calls) == 2 and len(cache) == 0

    async def ok() -> bytes:
        return b"x"

    assert await cache.get("/k", ok, store=False) == (b"x", None) and len(cache) == 0


async def test_size_is_bounded_oldest_first() -> None:
    cache = _cache(max_entries=3, max_bytes=10)

    async def body(value: bytes) -> bytes:
        return value

    for i in range(5):
        await cache.get(f"/k{i}", lambda i=i: body(b"%d" % i))
    assert len(cache) == 3
    assert (await cache.get("/k0", lambda: body(b"again")))[0] == b"again", "the oldest was dropped"
    assert (await cache.get("/k4", lambda: body(b"no")))[0] == b"4"
    await cache.get("/big", lambda: body(b"x" * 9))  # 9 of the 10 bytes: pushes out all but itself
    assert len(cache) == 1
    await cache.get("/huge", lambda: body(b"x" * 11))  # larger than the whole cache: served, not stored
    assert len(cache) == 1


def test_the_key_is_the_path_and_the_sorted_given_params() -> None:
    assert cache_key("/v1/agents", [("tag", "b"), ("limit", 100), ("tag", "a"), ("cursor", None)]) == (
        "/v1/agents?limit=100&tag=a&tag=b"
    )
    assert cache_key("/v1/trust/leaderboard", [("tag", None)]) == "/v1/trust/leaderboard"
