"""Exceptions of the AINS client: every API error carries the API's status, code, message and details."""

from __future__ import annotations

import json
from typing import Any

import httpx


class ClientError(Exception):
    """Base of every exception the SDK raises."""


class ApiError(ClientError):
    """The API answered with an error: ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400."""


class BudgetExceeded(ApiError):
    """402: the client's daily LLM budget would be exceeded."""


class Unauthorized(ApiError):
    """401: missing, invalid, expired or revoked API key."""


class Forbidden(ApiError):
    """403: the key lacks a scope."""


class NotFound(ApiError):
    """404: unknown (or another client's) resource."""


class Conflict(ApiError):
    """409: duplicate, idempotency key reused with another body, or the resource already finished."""


class PayloadTooLarge(ApiError):
    """413."""


class ValidationFailed(ApiError):
    """422: the request is invalid; ``details`` names the fields."""


class RateLimited(ApiError):
    """429 (after the client's retries); ``retry_after`` in seconds."""


class ServiceUnavailable(ApiError):
    """503: Temporal or the registry database is unreachable (after the client's retries)."""


class TransportError(ClientError):
    """The API could not be reached (after the client's retries, where retrying was safe)."""


class WaitTimeout(ClientError):
    """``wait()`` gave up before the task, chain or plan finished; ``last`` is what it saw last."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: BudgetExceeded,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: AINS never sends one; fall back to our own backoff


def error_from_response(response: httpx.Response) -> ApiError:
    code, message, details = "http_error", response.reason_phrase or "error", None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
    elif response.text:
        message = response.text[:500]
    cls = _BY_STATUS.get(response.status_code, ApiError)
    return cls(
        response.status_code,
        code,
        message,
        details,
        request_id=response.headers.get("X-Request-Id"),
        retry_after=retry_after_seconds(response),
    )
