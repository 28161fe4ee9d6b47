"""Map domain errors and validation failures to HTTP responses with one error shape:
``{"error": {"code": ..., "message": ..., "details": ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ains.core.platform.errors import (
    AinsError,
    BudgetExceeded,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)

log = logging.getLogger("ains.api")

_STATUS = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    PayloadTooLarge: 413,
    Unavailable: 503,
    BudgetExceeded: 402,
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# Documented on every operation (the app's default responses), so the OpenAPI document lists every status a
# client can get and its one error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Malformed request (e.g. a CORS preflight from an origin that is not allowed)"),
    401: _documented("Missing, invalid, expired or revoked API key"),
    402: _documented("The client's daily LLM budget does not cover the call"),
    403: _documented("The API key lacks the scope"),
    404: _documented("Unknown resource, or another client's"),
    409: _documented("Conflict: duplicate, idempotency key reused with another body, finished task"),
    413: _documented("Body over AINS_MAX_REQUEST_BYTES, or task input over AINS_MAX_TASK_INPUT_BYTES"),
    422: _documented("Validation error naming the field"),
    429: _documented("Rate limit exceeded; see Retry-After"),
    503: _documented("Temporal or the registry database is unreachable; retry"),
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def allowed_methods(request: Request) -> str:
    """Every method some route on the request's path accepts (Starlette's 405 names only the first route's)."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(AinsError)
    async def _domain(_: Request, exc: AinsError) -> JSONResponse:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        return JSONResponse(error_body(exc.code, exc.message, getattr(exc, "details", None)), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return JSONResponse(
            error_body("validation_error", _validation_message(list(exc.errors())), details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            429: "rate_limited",
        }
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(PoolTimeout)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # The registry DB refused or dropped the connection: nothing was accepted, the client may retry.
        log.warning("registry database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            error_body("unavailable", "the registry database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error; see server logs"), status_code=500)
