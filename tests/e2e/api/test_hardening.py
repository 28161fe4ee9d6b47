"""Hardening: security headers on every response, CORS only from Settings, no default secrets outside development."""

from __future__ import annotations

import httpx

from ains.api.app import create_app
from tests.support.servers import serve
from tests.support.stack import Stack, auth

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


async def test_security_headers_on_every_kind_of_response(stack: Stack) -> None:
    key, _ = await stack.new_key()
    responses = {
        "ok": await stack.http.get("/v1/tasks", headers=auth(key)),
        "health": await stack.http.get("/health"),
        "unauthorized": await stack.http.get("/v1/tasks"),
        "not_found": await stack.http.get("/v1/tasks/tsk_missing", headers=auth(key)),
        "validation": await stack.http.post("/v1/tasks", headers=auth(key), json={"type": 1}),
        "too_large": await stack.http.post(
            "/v1/tasks", headers=auth(key), content=b"x" * (stack.settings.max_request_bytes + 1)
        ),
        "unknown_route": await stack.http.get("/nowhere"),
    }
    assert responses["too_large"].status_code == 413
    for name, response in responses.items():
        for header, expected in SECURITY_HEADERS.items():
            assert response.headers.get(header) == expected, (name, header, dict(response.headers))
        assert response.headers.get("x-request-id"), name


async def test_no_cors_headers_by_default(stack: Stack) -> None:
    preflight = await stack.http.options(
        "/v1/tasks", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = await stack.http.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_allows_only_configured_origins(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"cors_origins": "https://app.example, https://ops.example"})
    server = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            allowed = await http.options(
                "/v1/tasks",
                headers={
                    "Origin": "https://ops.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "https://ops.example"
            assert "POST" in allowed.headers["access-control-allow-methods"]
            refused = await http.options(
                "/v1/tasks", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
            )
            assert refused.status_code == 400
            assert "access-control-allow-origin" not in refused.headers
            key, _ = await stack.new_key()
            actual = await http.get("/v1/tasks", headers={**auth(key), "Origin": "https://app.example"})
            assert actual.status_code == 200
            assert actual.headers["access-control-allow-origin"] == "https://app.example"
            assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()
    finally:
        await server.stop()


# ----------------------------------------------------------------------------- default secrets
