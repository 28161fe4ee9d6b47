"""Request dependencies: the app state, authentication, scopes and the per-key rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ains.api.state import AppState
from ains.core.access.keys import Principal
from ains.core.platform.pagination import CURSOR_MAX_LENGTH
from ains.models.keys import Scope

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer ains_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Alternative to the bearer header.")


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop on every request.
    state: AppState = request.app.state.ains
    return state


State = Annotated[AppState, Depends(get_state)]
# Every list's cursor parameter (core.platform.pagination).
Cursor = Annotated[
    str | None,
    Query(max_length=CURSOR_MAX_LENGTH, description="The next_cursor of the previous page; leave out for the first."),
]


async def _authenticate(
    request: Request,
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    presented = bearer.credentials if bearer else header_key
    if not presented:
        raise HTTPException(
            401, "missing API key: send 'Authorization: Bearer ains_...'", {"WWW-Authenticate": "Bearer"}
        )
    principal = await state.key_cache.authenticate(state.db, presented)
    if principal is None:
        raise HTTPException(401, "invalid, expired or revoked API key", {"WWW-Authenticate": "Bearer"})
    limit = principal.rate_limit_per_minute or state.settings.default_rate_limit_per_minute
    decision = await state.rate_limiter.hit(principal.key_id, limit)
    if not decision.allowed:
        raise HTTPException(
            429,
            f"rate limit of {limit} requests per minute exceeded; retry in {decision.retry_after_seconds}s",
            {"Retry-After": str(decision.retry_after_seconds), "X-RateLimit-Limit": str(limit)},
        )
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(_authenticate)]) -> Principal:
        if not principal.has(scope):
            raise HTTPException(403, f"this API key lacks the '{scope.value}' scope")
        return principal

    return dependency


def visible_client(principal: Principal) -> str | None:
    """Admins see every client's tasks; everyone else only their own."""
    return None if principal.has(Scope.ADMIN) else principal.client_id


TasksRead = Annotated[Principal, Depends(require(Scope.TASKS_READ))]
TasksWrite = Annotated[Principal, Depends(require(Scope.TASKS_WRITE))]
AgentsRead = Annotated[Principal, Depends(require(Scope.AGENTS_READ))]
AgentsWrite = Annotated[Principal, Depends(require(Scope.AGENTS_WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
