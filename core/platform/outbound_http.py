"""HTTP from the worker to the outside: agent calls, webhook deliveries, health checks. One aiohttp session.

aiohttp rather than httpx here: httpcore's connection pool re-scans every connection on each request, so its
CPU per request grows with the calls in flight. Measured on this project's 2-core machine, a POST to a local
server cost the client 0.53 ms at 8 concurrent requests, 5.6 ms at 32 and 9.4 ms at 64 with httpx 0.29,
against 0.10, 0.40 and 1.0 ms with aiohttp 3.14; a worker runs up to ``AINS_AGENT_CALL_CONCURRENCY`` (500)
agent calls at once. Callers see three outcomes besides an answer, none of them an aiohttp type:
``TimeoutError`` (the request's limit passed), ``NoConnection`` (none within the connect limit) and
``Unreachable`` (refused, reset, bad URL, ...; its message says which).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ains.core.platform.settings import Settings

IDLE_CONNECTION_SECONDS = 4.0


class NoConnection(Exception):
    """No connection within the connect limit."""


class Unreachable(Exception):
    """The request could not be sent or its answer not read; the message says why."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    too_large: bool = False  # the body passed the caller's limit and was not read further (``body`` is empty)

    def text(self, chars: int) -> str:
        return self.body[: chars * 4].decode("utf-8", "replace")[:chars]


def new_session(settings: Settings) -> aiohttp.ClientSession:
    """The worker's session: one connection per concurrent agent call, so a call never queues for one against its
    deadline; proxies from the environment, as before (HTTP_PROXY, NO_PROXY). No session-wide timeout: every
    request passes its own to ``send``."""
    connector = aiohttp.TCPConnector(
        limit=settings.agent_call_concurrency,
        limit_per_host=0,
        # Below the 5 s idle limit of uvicorn's and Node's servers (aiohttp's default is 15 s): a kept connection
        # the agent's server closed meanwhile would fail the next call sent on it, as the agent's fault.
        keepalive_timeout=IDLE_CONNECTION_SECONDS,
    )
    return aiohttp.ClientSession(connector=connector, trust_env=True)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    limit_seconds: float,
    connect_seconds: float | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = 2_000_000,
) -> Answer:
    """One request, redirects not followed (a URL passed the safety policy; where it redirects did not), the
    answer read up to ``max_bytes``. ``limit_seconds`` bounds the whole of it, connecting and reading included."""
    limits = aiohttp.ClientTimeout(
        total=limit_seconds, sock_connect=min(connect_seconds or limit_seconds, limit_seconds)
    )
    try:
        async with session.request(
            method, url, data=body, headers=headers, timeout=limits, allow_redirects=False
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    return Answer(response.status, b"", too_large=True)
                chunks.append(chunk)
            return Answer(response.status, b"".join(chunks))
    except aiohttp.ConnectionTimeoutError as exc:
        raise NoConnection(f"no connection within {limits.sock_connect:g}s") from exc
    except TimeoutError:  # aiohttp's read timeouts are TimeoutErrors too
        raise
    except aiohttp.ClientConnectorError as exc:
        raise Unreachable(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}") from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise Unreachable(f"invalid URL: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
