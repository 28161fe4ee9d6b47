"""core.webhooks.verify: what a receiver runs on each delivery refuses a tampered, foreign, unsigned or stale one."""

from __future__ import annotations

from ains.core.webhooks.verify import WebhookVerificationError, verify_webhook


def test_tampered_or_stale_signature_fails_verification() -> None:
    from ains.core.platform.signing import signed_headers

    body = b'{"id":"evt_1","type":"task.succeeded"}'
    headers = signed_headers("whsec_s", body, now=1_000_000)
    verify_webhook("whsec_s", body, headers, now=1_000_010)
    for args, why in (
        (("whsec_s", body + b" ", headers), "does not match"),
        (("whsec_other", body, headers), "does not match"),
        (("whsec_s", body, {}), "missing"),
    ):
        try:
            verify_webhook(*args, now=1_000_010)  # type: ignore[arg-type]
        except WebhookVerificationError as exc:
            assert why in str(exc)
        else:
            raise AssertionError(f"verification passed for {why}")
    try:
        verify_webhook("whsec_s", body, headers, now=1_000_000 + 301)
    except WebhookVerificationError as exc:
        assert "tolerance" in str(exc)
    else:
        raise AssertionError("a stale signature passed")
