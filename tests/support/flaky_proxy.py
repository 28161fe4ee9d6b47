"""A reverse proxy in front of the test API that can fail chosen requests on purpose, on a real socket.

``fail_next(method, path, status, forward=True)`` makes the next matching request answer ``status`` (with
``Retry-After``): after forwarding it to the API (the API acted, the answer is lost, as behind a gateway that
gives up) or without forwarding it. Everything else passes through unchanged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Failure:
    method: str
    path: str
    status: int
    forward: bool
    retry_after: str


@dataclass
class FlakyProxy:
    upstream: str
    failures: list[Failure] = field(default_factory=list)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def fail_next(
        self, method: str, path: str, status: int = 503, *, forward: bool = True, retry_after: str = "0.2"
    ) -> None:
        self.failures.append(Failure(method, path, status, forward, retry_after))

    def _take(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.method == method and failure.path == path:
                self.failures.remove(failure)
                return failure
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        method, path = request.method, request.url.path
        self.seen[(method, path)] += 1
        failure = self._take(method, path)
        response: Response
        if failure is None or failure.forward:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            async with httpx.AsyncClient(base_url=self.upstream, timeout=30) as http:
                upstream = await http.request(
                    method,
                    path,
                    params=request.query_params.multi_items(),
                    content=await request.body(),
                    headers=headers,
                )
            response = Response(
                upstream.content,
                status_code=upstream.status_code,
                headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}
                },
            )
        if failure is not None:
            response = JSONResponse(
                {"error": {"code": "unavailable", "message": "injected by the test proxy"}},
                status_code=failure.status,
                headers={"Retry-After": failure.retry_after},
            )
        await response(scope, receive, send)
