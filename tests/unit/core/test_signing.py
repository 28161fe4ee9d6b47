from __future__ import annotations

from ains.core.platform.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify

SECRET = "s3cret"


def test_signature_round_trip() -> None:
    body = b'{"task_id":"t1"}'
    headers = signed_headers(SECRET, body, now=1_000_000)
    assert verify(SECRET, body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=1_000_010)


def test_tampered_body_wrong_secret_and_stale_timestamp_fail() -> None:
    body = b'{"task_id":"t1"}'
    headers = signed_headers(SECRET, body, now=1_000_000)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert not verify(SECRET, b'{"task_id":"t2"}', ts, sig, now=1_000_000)
    assert not verify("other", body, ts, sig, now=1_000_000)
    assert not verify(SECRET, body, ts, sig, now=1_000_000 + 301)
    assert not verify(SECRET, body, None, sig)
    assert not verify(SECRET, body, "not-a-number", sig)
