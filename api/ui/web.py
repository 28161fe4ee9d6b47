"""What every dashboard page shares: templates, the signed-in user, CSRF-checked forms, HTML errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from ains.api.state import AppState
from ains.api.ui.session import CSRF_FIELD, CSRF_HEADER, UiUser, csrf_valid, current_user
from ains.core.platform.errors import AinsError, Conflict, InvalidInput, NotFound, PayloadTooLarge, Unavailable
from ains.models.keys import Scope

HERE = Path(__file__).parent
MAX_FORM_BYTES = 262_144
# No inline scripts or styles anywhere: every script and stylesheet is a file under /ui/static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_STATUS = {NotFound: 404, Conflict: 409, InvalidInput: 422, PayloadTooLarge: 413, Unavailable: 503}


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _json_attr(value: Any) -> str:
    """JSON for a ``data-`` attribute; autoescaping makes it safe there."""
    return json.dumps(value, default=str)


templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(), trim_blocks=True)
templates.filters.update(when=_when, pretty=_pretty, json_attr=_json_attr)


class SignInRequired(Exception):
    pass


def render(request: Request, template: str, user: UiUser | None, status_code: int = 200, **context: Any) -> Response:
    html = templates.get_template(template).render(
        request=request, user=user, notice=request.query_params.get("notice"), path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": CSP})


def redirect(url: str, notice: str | None = None) -> Response:
    if notice:
        url += ("&" if "?" in url else "?") + "notice=" + quote(notice)
    return RedirectResponse(url, status_code=303)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.ains
    return state


class UiRoute(APIRoute):
    """Dashboard routes answer in HTML: domain errors, missing scopes and bad input become an error page
    with the API's status code; a missing session sends the browser to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = "/ui/login?next=" + quote(request.url.path)
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except AinsError as exc:
                status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
                return _error(request, status, exc.message)
            except HTTPException as exc:
                return _error(request, exc.status_code, str(exc.detail), exc.headers)
            except (RequestValidationError, ValidationError) as exc:
                return _error(request, 422, _validation_message(exc))

        return route


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in list(exc.errors())[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def _error(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    user: UiUser | None = getattr(request.state, "ui_user", None)
    response = render(request, "error.html", user, status_code=status, status=status, message=message)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def signed_in(request: Request) -> UiUser:
    """Dependency: the signed-in user (else a redirect to the sign-in page), after the key's rate limit."""
    state = state_of(request)
    user = await current_user(request, state)
    if user is None:
        raise SignInRequired
    limit = user.principal.rate_limit_per_minute or state.settings.default_rate_limit_per_minute
    decision = await state.rate_limiter.hit(user.principal.key_id, limit)
    if not decision.allowed:
        raise HTTPException(
            429,
            f"rate limit of {limit} requests per minute exceeded; retry in {decision.retry_after_seconds}s",
            {"Retry-After": str(decision.retry_after_seconds)},
        )
    request.state.ui_user = user
    return user


def require(user: UiUser, scope: Scope) -> None:
    if not user.principal.has(scope):
        raise HTTPException(403, f"this API key lacks the '{scope.value}' scope")


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body (the last value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"form over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidInput("the form is not UTF-8") from exc
    return {name: values[-1] for name, values in fields.items()}


async def action(request: Request, user: UiUser) -> dict[str, str]:
    """The form of an action, after checking its CSRF token (403 without a valid one)."""
    form = await read_form(request)
    presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_valid(user.csrf_token, presented):
        raise HTTPException(403, "missing or invalid CSRF token: reload the page and try again")
    return form
