"""The HTTP client of the measured loops: what the bench's simulated users send to the API.

aiohttp rather than httpx (which the control calls use): under the S2 load at c=64 a py-spy profile of the
bench process showed httpcore's connection pool re-scanning every connection on each request
(``_assign_requests_to_connections``, ``has_expired``), 3-6 ms of the bench process's CPU per POST against
~0.15 ms for aiohttp on the same requests. The load generator is not AINS: its cost should not be charged to
the task it submits, nor steal the cores the measured processes share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the decoded JSON body, or the text when it is not JSON

    def text(self) -> str:
        return str(self.body)[:200]


class LoadClient:
    """A keep-alive session to one base URL, authenticated with one API key."""

    def __init__(self, base_url: str, key: str, timeout: float = 60) -> None:
        self._session = aiohttp.ClientSession(
            base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=0),  # one connection per concurrent user, as httpx's pool gave
        )

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, json: Any = None) -> Reply:
        async with self._session.request(method, path, json=json) as response:
            if response.content_type == "application/json":
                return Reply(response.status, await response.json())
            return Reply(response.status, await response.text())

    async def post(self, path: str, json: Any) -> Reply:
        return await self.request("POST", path, json)

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)
