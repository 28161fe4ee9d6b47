"""Sending a ``Call``: authentication, retries of 429/503 (honouring ``Retry-After``), error mapping, the
event stream and pagination, once for sync (``httpx.Client``) and once for async (``httpx.AsyncClient``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ains.models.common import Page
from ains.sdk.calls import Call, Query
from ains.sdk.config import ClientConfig
from ains.sdk.errors import TransportError, error_from_response, retry_after_seconds
from ains.sdk.sse import ServerEvent, SseDecoder

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 503})
USER_AGENT = "ains-python-sdk/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_retries`` more tries after a 429/503 or a failed connection; the wait is the answer's
    ``Retry-After`` when it has one, else ``backoff_seconds`` doubling; never more than ``max_wait_seconds``."""

    max_retries: int = 4
    backoff_seconds: float = 0.25
    max_wait_seconds: float = 30.0

    def wait(self, retry: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.backoff_seconds * 2**retry
        return min(wanted, self.max_wait_seconds)


def _should_retry(call: Call[Any], error: httpx.TransportError) -> bool:
    """A connection never made cannot have done anything; other failures only when resending is safe."""
    return call.replayable or isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)


def _headers(config: ClientConfig) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    return headers


def _request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": list(call.params), "headers": dict(call.headers)}
    if call.body is not None:
        args["json"] = call.body
    return args


def _parse(call: Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        raise error_from_response(response)
    return call.parse(response.content)


def _events_call(path: str, params: Query) -> Call[None]:
    return Call("GET", path, lambda _: None, params=params, replayable=True)


class SyncTransport:
    def __init__(
        self, config: ClientConfig, retry: RetryPolicy, timeout: float, http: httpx.Client | None = None
    ) -> None:
        self.retry = retry
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=config.url, timeout=timeout)
        self.http.headers.update(_headers(config))

    def send(self, call: Call[Any]) -> httpx.Response:
        for retry in range(self.retry.max_retries + 1):
            last = retry == self.retry.max_retries
            try:
                response = self.http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                if last or not _should_retry(call, exc):
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
                time.sleep(self.retry.wait(retry, None))
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            time.sleep(self.retry.wait(retry, retry_after_seconds(response)))
        raise AssertionError("unreachable")

    def run(self, call: Call[T]) -> T:
        return _parse(call, self.send(call))

    def pages(self, first: Callable[[str | None], Call[Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = self.run(first(cursor))
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def events(self, path: str, params: Query) -> Iterator[ServerEvent]:
        call = _events_call(path, params)
        for retry in range(self.retry.max_retries + 1):
            try:
                with self.http.stream(
                    "GET", path, params=list(params), timeout=httpx.Timeout(30, read=None)
                ) as response:
                    if response.status_code in RETRY_STATUSES and retry < self.retry.max_retries:
                        time.sleep(self.retry.wait(retry, retry_after_seconds(response)))
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise error_from_response(response)
                    decoder = SseDecoder()
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is not None:
                            yield event
                    return
            except httpx.TransportError as exc:
                if retry == self.retry.max_retries or not _should_retry(call, exc):
                    raise TransportError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
                time.sleep(self.retry.wait(retry, None))

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


class AsyncTransport:
    def __init__(
        self, config: ClientConfig, retry: RetryPolicy, timeout: float, http: httpx.AsyncClient | None = None
    ) -> None:
        self.retry = retry
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(base_url=config.url, timeout=timeout)
        self.http.headers.update(_headers(config))

    async def send(self, call: Call[Any]) -> httpx.Response:
        for retry in range(self.retry.max_retries + 1):
            last = retry == self.retry.max_retries
            try:
                response = await self.http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                if last or not _should_retry(call, exc):
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self.retry.wait(retry, None))
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            await asyncio.sleep(self.retry.wait(retry, retry_after_seconds(response)))
        raise AssertionError("unreachable")

    async def run(self, call: Call[T]) -> T:
        return _parse(call, await self.send(call))

    async def pages(self, first: Callable[[str | None], Call[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await self.run(first(cursor))
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def events(self, path: str, params: Query) -> AsyncIterator[ServerEvent]:
        call = _events_call(path, params)
        for retry in range(self.retry.max_retries + 1):
            try:
                async with self.http.stream(
                    "GET", path, params=list(params), timeout=httpx.Timeout(30, read=None)
                ) as response:
                    if response.status_code in RETRY_STATUSES and retry < self.retry.max_retries:
                        await asyncio.sleep(self.retry.wait(retry, retry_after_seconds(response)))
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_from_response(response)
                    decoder = SseDecoder()
                    async for line in response.aiter_lines():
                        event = decoder.feed(line)
                        if event is not None:
                            yield event
                    return
            except httpx.TransportError as exc:
                if retry == self.retry.max_retries or not _should_retry(call, exc):
                    raise TransportError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self.retry.wait(retry, None))

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()
