"""Verify an AINS webhook on the receiving side: the signature and its freshness.

Every delivery carries ``X-AINS-Timestamp`` (Unix seconds) and ``X-AINS-Signature``
(``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" keyed with the subscription's secret>``).
Check it over the *raw* request body, before parsing JSON::

    from ains.core.webhooks.verify import WebhookVerificationError, verify_webhook

    try:
        verify_webhook(secret, raw_body, request.headers)
    except WebhookVerificationError as exc:
        return 401, str(exc)

Then deduplicate on ``X-AINS-Event-Id``: a delivery can arrive more than once (retries, replays).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from ains.core.platform.signing import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

EVENT_ID_HEADER = "X-AINS-Event-Id"
EVENT_TYPE_HEADER = "X-AINS-Event-Type"
DELIVERY_ID_HEADER = "X-AINS-Delivery-Id"
ATTEMPT_HEADER = "X-AINS-Delivery-Attempt"


class WebhookVerificationError(Exception):
    """The delivery must be rejected; the message says why."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_webhook(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise ``WebhookVerificationError`` unless the signature matches and the timestamp is fresh."""
    timestamp_header = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp_header or not signature:
        raise WebhookVerificationError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not a Unix timestamp") from None
    current = now if now is not None else time.time()
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError(
            f"timestamp is {abs(current - timestamp):.0f}s away from now; the tolerance is {tolerance_seconds}s"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise WebhookVerificationError("signature does not match the body")
