"""Every JSON request body is parsed by ``core.platform.json_safety.parse_request_json`` (one rule at the edge).

``SafeJSONRoute`` is the route class of every router: it reads and parses the body before FastAPI does and
leaves the result where Starlette's ``Request.json()`` looks for it, so the body is parsed once. A value the
registry, an agent or a workflow history could not hold is a 422 naming the field; the size limit is a 413
(the limit's exception passes through, where FastAPI would turn it into a 400).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ains.core.platform.json_safety import UnsafeJSON, parse_request_json


def _is_json(request: Request) -> bool:
    """FastAPI's own rule: no content type, or application/json or application/*+json."""
    content_type = request.headers.get("content-type")
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def parse_body(request: Request) -> None:
    """Parse the JSON body (if any) strictly and cache it on the request for FastAPI."""
    body = await request.body()
    if not body or not _is_json(request):
        return
    try:
        request._json = parse_request_json(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": f"JSON decode error: {exc.msg}", "input": {}}]
        ) from None
    except UnsafeJSON as exc:
        raise RequestValidationError(
            [{"type": "json_unsafe", "loc": ("body", *exc.path), "msg": exc.message, "input": None}]
        ) from None


class SafeJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def parse_then_handle(request: Request) -> Response:
            await parse_body(request)
            return await handler(request)

        return parse_then_handle
