"""Sign in with an API key, sign out."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response

from ains.api.ui import session as sessions
from ains.api.ui.web import UiRoute, action, read_form, redirect, render, signed_in, state_of
from ains.core.access.keys import principal_by_key_id

router = APIRouter(route_class=UiRoute)
LOGIN_CSRF_MAX_AGE = 3600


def _safe_next(target: str | None) -> str:
    # Only dashboard paths: never an absolute or protocol-relative URL (open redirect).
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


def _login_page(request: Request, next_url: str, error: str | None = None, status_code: int = 200) -> Response:
    # Login CSRF: a double-submit token (cookie + field), as there is no session yet to derive one from.
    token = secrets.token_urlsafe(16)
    response = render(request, "login.html", None, status_code=status_code, csrf=token, next=next_url, error=error)
    sessions.set_cookie(response, request, sessions.LOGIN_COOKIE, token, LOGIN_CSRF_MAX_AGE)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    state = state_of(request)
    if await sessions.current_user(request, state) is not None:
        return redirect(_safe_next(request.query_params.get("next")))
    return _login_page(request, _safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request) -> Response:
    state = state_of(request)
    form = await read_form(request)
    next_url = _safe_next(form.get("next"))
    if not sessions.csrf_valid(request.cookies.get(sessions.LOGIN_COOKIE, ""), form.get(sessions.CSRF_FIELD)):
        return _login_page(request, next_url, "The sign-in form expired; please try again.", 403)
    principal = await state.key_cache.authenticate(state.db, form.get("api_key", "").strip())
    if principal is None:
        return _login_page(request, next_url, "Invalid, expired or revoked API key.", 401)
    async with state.db.session() as db_session:
        verified = await principal_by_key_id(db_session, principal.key_id)
    if verified is None:
        return _login_page(request, next_url, "Invalid, expired or revoked API key.", 401)
    expires_at = verified[1].timestamp() if verified[1] is not None else None
    session = sessions.new_session(principal.key_id, state.settings.ui_session_ttl_seconds, expires_at)
    response = redirect(next_url)
    secret = state.settings.ui_session_secret
    sessions.set_cookie(
        response, request, sessions.COOKIE, sessions.encode(secret, session), state.settings.ui_session_ttl_seconds
    )
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await signed_in(request)
    await action(request, user)
    response = redirect("/ui/login")
    response.delete_cookie(sessions.COOKIE, path="/ui")
    return response
