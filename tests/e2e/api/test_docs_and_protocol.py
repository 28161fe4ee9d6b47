"""HTTP protocol details a client or a fuzzer relies on: offline docs, documented statuses, Allow on 405,
schedules' next runs, and loopback listeners in the dev stack."""

from __future__ import annotations

import re

import pytest

from tests.support.stack import Stack, auth


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_the_api_not_a_cdn(stack: Stack, page: str) -> None:
    html = await stack.http.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from another host"
        response = await stack.http.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    assert "cdn" not in html.text.lower()


async def test_every_operation_documents_the_error_statuses(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"400", "401", "413", "422", "429", "503"} <= documented, (method, path, documented)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/schedules", "GET, POST"),
        ("PUT", "/v1/tasks", "GET, POST"),
        ("PUT", "/v1/agents/some-agent", "DELETE, GET, PATCH"),
        ("POST", "/health", "GET"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(stack: Stack, method: str, path: str, allowed: str) -> None:
    response = await stack.http.request(method, path, headers=auth(stack.admin_key))
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_paused_schedule_lists_no_next_runs(stack: Stack) -> None:
    key, _ = await stack.new_key()
    body = {"name": "paused", "interval_seconds": 3600, "target": {"kind": "task", "task": {"type": "echo"}}}
    created = await stack.http.post("/v1/schedules", headers=auth(key), json={**body, "paused": True})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    try:
        view = (await stack.http.get(f"/v1/schedules/{schedule_id}", headers=auth(key))).json()
        assert view["paused"] is True and view["next_run_times"] == []
        resumed = await stack.http.post(f"/v1/schedules/{schedule_id}/resume", headers=auth(key), json={})
        assert resumed.status_code == 200, resumed.text
        view = (await stack.http.get(f"/v1/schedules/{schedule_id}", headers=auth(key))).json()
        assert view["paused"] is False and view["next_run_times"]
    finally:
        await stack.http.delete(f"/v1/schedules/{schedule_id}", headers=auth(key))
