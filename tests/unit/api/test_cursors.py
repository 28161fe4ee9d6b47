"""Every list endpoint takes one cursor format (core.platform.pagination) and refuses any other with a 422."""

from __future__ import annotations

import base64

from ains.core.access.audit import ENTRIES
from ains.core.tasks.service import TASKS
from ains.models.tables import utcnow
from tests.support.stack import auth
from tests.unit.api.conftest import InProcessApi

# /v1/schedules too (it needs Temporal to answer at all: tests/e2e/api/test_input_safety.py).
LISTS = ["/v1/tasks", "/v1/agents", "/v1/audit", "/v1/webhooks", "/v1/webhooks/deliveries"]


async def test_every_list_refuses_a_cursor_it_did_not_mint_with_422(api: InProcessApi) -> None:
    admin = auth(api.admin_key)
    of_another_list = {path: ENTRIES.encode((1,)) for path in LISTS} | {"/v1/audit": TASKS.encode((utcnow(), "t"))}
    for path in LISTS:
        # The formats before one cursor format (offsets, bare ids), junk, and another list's cursor.
        for cursor in ("50", "agt-1", "9223372036854775808", "\u0661\u0662", of_another_list[path]):
            response = await api.http.get(path, params={"cursor": cursor}, headers=admin)
            assert response.status_code == 422, (path, cursor, response.text)
            assert "next_cursor" in response.json()["error"]["message"]
    beyond_the_id_column = "audit." + base64.urlsafe_b64encode(b"[2147483648]").decode().rstrip("=")
    assert (await api.http.get("/v1/audit", params={"cursor": beyond_the_id_column}, headers=admin)).status_code == 422
    largest = await api.http.get("/v1/audit", params={"cursor": ENTRIES.encode((2**31 - 1,))}, headers=admin)
    assert largest.status_code == 200
