"""Domain errors. The API maps them to HTTP statuses (api/errors.py); activities map them to Temporal failures."""

from __future__ import annotations


class AinsError(Exception):
    """Base class; ``code`` is a stable machine-readable identifier."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AinsError):
    code = "not_found"


class Conflict(AinsError):
    code = "conflict"


class InvalidInput(AinsError):
    code = "invalid_input"


class PayloadTooLarge(AinsError):
    code = "payload_too_large"


class Unavailable(AinsError):
    code = "unavailable"


class BudgetExceeded(AinsError):
    """An LLM call was refused before it was made because it would exceed the client's budget."""

    code = "budget_exceeded"
