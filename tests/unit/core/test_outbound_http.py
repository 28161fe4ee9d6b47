"""The worker's outbound HTTP against real servers on 127.0.0.1: what an agent call, a webhook delivery and a
health check rely on (no redirect followed, the answer's size bounded, each failure told apart)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from ains.core.platform.outbound_http import Answer, Unreachable, new_session, send
from ains.core.platform.settings import Settings


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"got": (await request.read()).decode(), "sig": request.headers.get("X-Sig")})

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 300_000)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="late")

    app = web.Application()
    app.add_routes([web.post("/echo", echo), web.get("/redirect", redirect), web.get("/big", big)])
    app.add_routes([web.get("/slow", slow)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session(Settings()) as http:
        yield http


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sends_the_body_and_headers_and_reads_the_answer(server: str, session: aiohttp.ClientSession) -> None:
    answer = await send(session, "POST", f"{server}/echo", limit_seconds=5, body=b'{"a":1}', headers={"X-Sig": "s1"})
    assert answer.status == 200 and not answer.too_large
    assert answer.body == b'{"got": "{\\"a\\":1}", "sig": "s1"}'


async def test_a_redirect_is_an_answer_not_followed(server: str, session: aiohttp.ClientSession) -> None:
    """A URL passed the safety policy; where it redirects did not (an agent or receiver could point AINS at
    an internal address)."""
    answer = await send(session, "GET", f"{server}/redirect", limit_seconds=5)
    assert answer.status == 302


async def test_an_answer_over_the_limit_is_not_read_further(server: str, session: aiohttp.ClientSession) -> None:
    assert await send(session, "GET", f"{server}/big", limit_seconds=5, max_bytes=100_000) == Answer(
        200, b"", too_large=True
    )
    whole = await send(session, "GET", f"{server}/big", limit_seconds=5, max_bytes=300_000)
    assert len(whole.body) == 300_000 and not whole.too_large


async def test_the_limit_bounds_the_whole_request(server: str, session: aiohttp.ClientSession) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await send(session, "GET", f"{server}/slow", limit_seconds=0.3)
    assert asyncio.get_running_loop().time() - started < 1


async def test_a_refused_connection_says_where(session: aiohttp.ClientSession) -> None:
    port = _closed_port()
    with pytest.raises(Unreachable, match=rf"^cannot connect to 127\.0\.0\.1:{port}: "):
        await send(session, "POST", f"http://127.0.0.1:{port}/run", limit_seconds=5, connect_seconds=1)


async def test_a_url_that_is_not_http_is_unreachable(session: aiohttp.ClientSession) -> None:
    with pytest.raises(Unreachable, match="invalid URL"):
        await send(session, "GET", "ftp://127.0.0.1/x", limit_seconds=5)
