"""Dashboard session cookies: only the server's secret makes one, and it ends when it says it does."""

from __future__ import annotations

import time

from ains.api.ui.session import Session, csrf_token, decode, encode, new_session


def test_a_session_round_trips_and_rejects_forgery_and_expiry() -> None:
    session = new_session("key-1", ttl_seconds=60, key_expires_at=None)
    cookie = encode("secret", session)
    assert decode("secret", cookie) == session
    assert decode("another-secret", cookie) is None  # signed with a different secret
    payload, _, mac = cookie.partition(".")
    forged = encode("attacker", Session("admin-key", time.time() + 3600, session.nonce)).split(".")[0]
    assert decode("secret", f"{forged}.{mac}") is None  # someone else's payload under this signature
    assert decode("secret", payload) is None and decode("secret", "") is None and decode("secret", "a.b.c") is None
    assert decode("secret", cookie, now=session.expires_at + 1) is None


def test_a_session_never_outlives_its_key_and_each_has_its_own_csrf_token() -> None:
    soon = time.time() + 5
    assert new_session("k", ttl_seconds=3600, key_expires_at=soon).expires_at == soon
    one, two = new_session("k", 60, None), new_session("k", 60, None)
    assert csrf_token("secret", one) != csrf_token("secret", two)
    assert csrf_token("secret", one) != csrf_token("other", one)
