"""Dashboard sessions and CSRF tokens.

Signing in with an API key sets an HttpOnly, SameSite=Lax cookie naming the key (by id, never the secret),
the session's expiry and a random nonce, signed with HMAC-SHA256 (``AINS_UI_SESSION_SECRET``). Every
request re-reads the key, so a revoked or expired key ends its sessions at once, on every API replica;
the key's scopes and rate limit apply as on the API. Actions (POST) must carry the CSRF token derived
from the session nonce, as the form field ``csrf_token`` or the ``X-CSRF-Token`` header (htmx).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from ains.api.state import AppState
from ains.core.access.keys import Principal, principal_by_key_id
from ains.models.keys import Scope

COOKIE = "ains_session"
LOGIN_COOKIE = "ains_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    key_id: str
    expires_at: float
    nonce: str


@dataclass(frozen=True)
class UiUser:
    """The signed-in key of one dashboard request."""

    principal: Principal
    csrf_token: str

    @property
    def client_id(self) -> str:
        return self.principal.client_id

    @property
    def is_admin(self) -> bool:
        return self.principal.has(Scope.ADMIN)

    def can(self, scope: str) -> bool:
        return self.principal.has(Scope(scope))

    @property
    def visible_client(self) -> str | None:
        """Admins see every client's tasks; everyone else only their own (as ``api.deps.visible_client``)."""
        return None if self.is_admin else self.principal.client_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest())


def encode(secret: str, session: Session) -> str:
    payload = _b64(json.dumps({"k": session.key_id, "e": session.expires_at, "n": session.nonce}).encode())
    return f"{payload}.{_mac(secret, 'session', payload)}"


def decode(secret: str, cookie: str, now: float | None = None) -> Session | None:
    """The session of a cookie, or None when it is malformed, forged or expired."""
    payload, _, mac = cookie.partition(".")
    if not payload or not hmac.compare_digest(mac, _mac(secret, "session", payload)):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(key_id=str(data["k"]), expires_at=float(data["e"]), nonce=str(data["n"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires_at > (now or time.time()) else None


def csrf_token(secret: str, session: Session) -> str:
    return _mac(secret, "csrf", session.nonce)


def new_session(key_id: str, ttl_seconds: float, key_expires_at: float | None) -> Session:
    expires = time.time() + ttl_seconds
    if key_expires_at is not None:
        expires = min(expires, key_expires_at)
    return Session(key_id=key_id, expires_at=expires, nonce=secrets.token_urlsafe(16))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


async def current_user(request: Request, state: AppState) -> UiUser | None:
    """The signed-in user of a request, or None (no cookie, forged, expired, or the key is no longer valid)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    session = decode(state.settings.ui_session_secret, cookie)
    if session is None:
        return None
    async with state.db.session() as db_session:
        verified = await principal_by_key_id(db_session, session.key_id)
    if verified is None:
        return None
    principal = verified[0]
    request.state.principal = principal  # the audit log names who acted
    return UiUser(principal=principal, csrf_token=csrf_token(state.settings.ui_session_secret, session))


def csrf_valid(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected, presented or "")
