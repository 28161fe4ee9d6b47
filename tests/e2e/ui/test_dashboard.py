"""The operator dashboard in a real browser against the real stack (Temporal, API, workers, demo agent).

The browser tests run on the SQLite stack only: the pages call the same core functions as the API, whose
Postgres behaviour the API tests cover; tests/unit/core/test_overview.py checks the dashboard's own queries on both.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from ains.models.tables import AuditEntry, LlmCall
from tests.e2e.ui.conftest import Session, open_session
from tests.support.receivers import webhook_receiver
from tests.support.stack import Stack, auth

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True, scope="session")
LIVE = 20_000  # ms: how long a live page may take to show a change


async def _poll(stack: Stack, key: str, path: str, done: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await stack.http.get(path, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        if done(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never got there: {body}")


async def test_sign_in_shows_the_agents_and_their_trust(ui: Session, stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run", max_concurrency=4)
    key, _ = await stack.new_key()
    await stack.wait_for(key, (await stack.submit(key, required_capabilities=[tag]))["id"])

    page = await ui.goto("/ui/agents")
    await expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/agents$"))  # no session: sign in first
    await page.fill("input[name=api_key]", "ains_not-a-real-key")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("Invalid, expired or revoked API key")

    await page.fill("input[name=api_key]", stack.admin_key)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(ui.url("/ui/agents"))  # back where it was going
    row = page.locator(f"tr[data-agent='{agent_id}']")
    await expect(row).to_contain_text("available")
    await expect(row).to_contain_text("0/4")
    await expect(row).to_contain_text("0.520")  # one success: 0.5 + 0.02
    await expect(row).to_contain_text(tag)
    cookie = next(c for c in await ui.context.cookies() if c["name"] == "ains_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert stack.admin_key not in cookie["value"]
    await ui.snap("agents")

    await row.get_by_role("link", name=agent_id).click()
    await expect(page.locator("#trust-score")).to_have_text("0.520")
    await expect(page.get_by_text("agent call succeeded").first).to_be_visible()  # the record's reason
    points = await ui.chart("#trust-chart", "chart => chart.data.datasets[0].data")
    assert points == [0.52]


async def test_a_revoked_key_ends_its_sessions(ui: Session, stack: Stack) -> None:
    key, client_id = await stack.new_key()
    await ui.sign_in(key)
    await expect(ui.page.locator("nav .who")).to_contain_text(client_id)
    keys = (await stack.http.get("/v1/keys", headers=auth(stack.admin_key), params={"client_id": client_id})).json()
    revoked = await stack.http.delete(f"/v1/keys/{keys[0]['id']}", headers=auth(stack.admin_key))
    assert revoked.status_code in (200, 204), revoked.text
    await ui.goto("/ui/tasks")
    await expect(ui.page).to_have_url(re.compile(r"/ui/login\?next=/ui/tasks$"))


async def test_submitted_task_is_watched_to_the_end_with_its_receipt(ui: Session, stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    await ui.sign_in(key)
    page = await ui.goto("/ui/tasks")
    form = page.locator("#submit-form")
    await form.locator("input[name=type]").fill("echo")
    await form.locator("input[name=required_capabilities]").fill(tag)
    await form.locator("textarea[name=input]").fill('{"delay_seconds": 2, "text": "from the browser"}')
    await form.get_by_role("button", name="Submit").click()

    await expect(page).to_have_url(re.compile(r"/ui/tasks/tsk_"))
    task_id = page.url.rsplit("/", 1)[1]
    assert await page.locator("#task-status").inner_text() in {"pending", "routing", "running"}
    await expect(page.locator("#task-status")).to_have_text("succeeded", timeout=LIVE)  # live, without a reload
    await expect(page.locator("#task-result")).to_contain_text("from the browser")
    await expect(page.locator(".timeline")).to_contain_text(f"attempt 1 routed to {agent_id}")
    await expect(page.locator(".timeline")).to_contain_text("task succeeded")
    receipt = page.locator("#receipt")
    await expect(receipt).to_contain_text("least_loaded")
    await expect(receipt.locator("tr.winner")).to_contain_text(agent_id)
    await expect(receipt.locator("tr.winner")).to_contain_text("chosen")
    await ui.snap("task")

    api = (await stack.http.get(f"/v1/tasks/{task_id}", headers=auth(key))).json()
    assert api["status"] == "succeeded" and api["input"]["text"] == "from the browser"
    link = page.get_by_role("link", name=re.compile("Temporal UI"))
    assert await link.get_attribute("href") == api["temporal_ui_url"]

    await page.goto(ui.url("/ui"))
    await expect(page.locator("[data-field='success_rate']")).to_have_text("100.0%")
    finished = await ui.chart(
        "#throughput-chart",
        "chart => chart.data.datasets.find(d => d.label === 'succeeded').data.reduce((a, b) => a + b, 0)",
    )
    assert finished == 1


async def test_a_client_sees_only_its_own_tasks(browser: Browser, ui: Session, stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    mine, _ = await stack.new_key()
    theirs, _ = await stack.new_key()
    task = await stack.submit(mine, required_capabilities=[tag])
    await stack.wait_for(mine, task["id"])

    await ui.sign_in(theirs)
    page = await ui.goto("/ui/tasks")
    await expect(page.locator("table.tasks")).to_be_visible()
    assert await page.locator(f"tr[data-task='{task['id']}']").count() == 0
    response = await page.goto(ui.url(f"/ui/tasks/{task['id']}"))
    assert response is not None and response.status == 404
    await expect(page.get_by_role("alert")).to_contain_text("not found")

    owner = await open_session(browser, stack)
    try:
        await owner.sign_in(mine)
        await owner.goto("/ui/tasks")
        await expect(owner.page.locator(f"tr[data-task='{task['id']}']")).to_contain_text("succeeded")
        await owner.snap("tasks")
    finally:
        await owner.context.close()
    admin = await open_session(browser, stack)
    try:
        await admin.sign_in(stack.admin_key)
        response = await admin.page.goto(admin.url(f"/ui/tasks/{task['id']}"))
        assert response is not None and response.status == 200
    finally:
        await admin.context.close()


async def test_actions_without_the_csrf_token_are_refused(ui: Session, stack: Stack) -> None:
    _, tag = await stack.register_agent("/hang")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag], timeout_seconds=60)
    await ui.sign_in(key)
    await ui.goto(f"/ui/tasks/{task['id']}")
    token = await ui.page.locator("input[name=csrf_token]").first.input_value()

    # The session cookie travels with these requests, as it would with a forged cross-site form.
    refused = await ui.context.request.post(ui.url(f"/ui/tasks/{task['id']}/cancel"), form={})
    assert refused.status == 403 and "CSRF" in await refused.text()
    forged = await ui.context.request.post(ui.url(f"/ui/tasks/{task['id']}/cancel"), form={"csrf_token": "x" + token})
    assert forged.status == 403
    assert (await stack.http.get(f"/v1/tasks/{task['id']}", headers=auth(key))).json()["status"] != "cancelled"
    other = await open_session(ui.context.browser, stack)  # type: ignore[arg-type]
    try:
        await other.sign_in(key)  # another session of the same key: its token is not this one's
        stolen = await other.context.request.post(
            other.url(f"/ui/tasks/{task['id']}/cancel"), form={"csrf_token": token}
        )
        assert stolen.status == 403
    finally:
        await other.context.close()

    await ui.page.get_by_role("button", name="Cancel").click()
    await expect(ui.page.locator(".notice")).to_have_text("cancellation requested")
    await expect(ui.page.locator("#task-status")).to_have_text("cancelled", timeout=LIVE)
    entries = (
        await stack.http.get("/v1/audit", headers=auth(stack.admin_key), params={"resource_id": task["id"]})
    ).json()
    newest = entries["items"][0]
    assert (newest["method"], newest["path"], newest["status_code"]) == (
        "POST",
        f"/ui/tasks/{task['id']}/cancel",
        303,
    )


async def test_a_dead_delivery_is_replayed_from_the_dashboard(ui: Session, stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent("/run")
    async with webhook_receiver(always_fail=True) as receiver:
        response = await stack.http.post(
            "/v1/webhooks", headers=auth(key), json={"url": receiver.url, "event_types": ["task.succeeded"]}
        )
        assert response.status_code == 201, response.text
        await stack.wait_for(key, (await stack.submit(key, required_capabilities=[tag]))["id"])
        listed = await _poll(stack, key, "/v1/webhooks/deliveries?status=dead", lambda body: len(body["items"]) == 1)
        delivery_id = listed["items"][0]["id"]
        receiver.always_fail = False

        await ui.sign_in(key)
        page = await ui.goto("/ui/webhooks?status=dead")
        row = page.locator(f"tr[data-delivery='{delivery_id}']")
        await expect(row).to_contain_text("dead")
        await ui.snap("webhooks")
        await row.get_by_role("button", name="Replay").click()
        await expect(page.locator(".notice")).to_have_text(f"delivery {delivery_id} replayed")
        await receiver.wait_for(1)
        done = await _poll(
            stack, key, f"/v1/webhooks/deliveries/{delivery_id}", lambda body: body["status"] == "succeeded"
        )
        assert done["replays"] == 1


async def test_a_schedule_is_paused_and_resumed(ui: Session, stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent("/run")
    body = {
        "name": "nightly digest",
        "cron": "0 3 * * *",
        "target": {"kind": "task", "task": {"type": "echo", "required_capabilities": [tag]}},
    }
    created = await stack.http.post("/v1/schedules", headers=auth(key), json=body)
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]

    await ui.sign_in(key)
    page = await ui.goto("/ui/schedules")
    row = page.locator(f"tr[data-schedule='{schedule_id}']")
    await expect(row.locator(".sched-state")).to_contain_text("active")
    await row.locator("input[name=note]").fill("maintenance window")
    await row.get_by_role("button", name="Pause").click()
    await expect(page.locator(".notice")).to_have_text(f"schedule {schedule_id} paused")
    await expect(row.locator(".sched-state")).to_contain_text("paused")
    await expect(row.locator(".sched-state")).to_contain_text("maintenance window")
    await ui.snap("schedules")
    state = (await stack.http.get(f"/v1/schedules/{schedule_id}", headers=auth(key))).json()
    assert state["paused"] is True and state["note"] == "maintenance window"

    await row.get_by_role("button", name="Resume").click()
    await expect(row.locator(".sched-state")).to_contain_text("active")
    assert (await stack.http.get(f"/v1/schedules/{schedule_id}", headers=auth(key))).json()["paused"] is False
    await stack.http.delete(f"/v1/schedules/{schedule_id}", headers=auth(key))


async def test_operators_mark_agents_unavailable_and_override_trust(ui: Session, stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    submitted = [await stack.submit(key, required_capabilities=[tag]) for _ in range(3)]
    await asyncio.gather(*(stack.wait_for(key, t["id"]) for t in submitted))
    await ui.sign_in(key)  # a client key without the admin scope: no trust override offered
    page = await ui.goto(f"/ui/agents/{agent_id}")
    assert await page.locator("#override-form").count() == 0
    refused = await ui.context.request.post(
        ui.url(f"/ui/agents/{agent_id}/trust"),
        form={
            "csrf_token": await page.locator("input[name=csrf_token]").first.input_value(),
            "score": "0.9",
            "reason": "x" * 5,
        },
    )
    assert refused.status == 403 and "admin" in await refused.text()
    await ui.context.clear_cookies()

    await ui.sign_in(stack.admin_key)
    page = await ui.goto(f"/ui/agents/{agent_id}")
    await page.get_by_role("button", name="Mark unavailable").click()
    await expect(page.locator(".notice")).to_have_text(f"{agent_id} marked unavailable")
    assert (await stack.http.get(f"/v1/agents/{agent_id}", headers=auth(key))).json()["status"] == "unavailable"
    await page.get_by_role("button", name="Mark available").click()
    await expect(page.locator(".notice")).to_have_text(f"{agent_id} marked available")

    form = page.locator("#override-form")
    await form.locator("input[name=score]").fill("0.930")
    await form.locator("input[name=reason]").fill("vetted by the platform team")
    await form.get_by_role("button", name="Override trust").click()
    await expect(page.locator("#trust-score")).to_have_text("0.930")
    await expect(page.get_by_text("vetted by the platform team").first).to_be_visible()
    # The chart has a point per trust record; hovering the last one shows its change and reason.
    tooltip = await ui.chart(
        "#trust-chart",
        """chart => { const last = chart.data.datasets[0].data.length - 1;
                  const point = chart.getDatasetMeta(0).data[last];
                  chart.tooltip.setActiveElements([{datasetIndex: 0, index: last}], {x: point.x, y: point.y});
                  chart.update();
                  return {scores: chart.data.datasets[0].data,
                          lines: chart.tooltip.body.flatMap(b => b.lines.concat(b.after))}; }""",
    )
    *earned, overridden = tooltip["scores"]
    assert len(earned) == 3 and earned == sorted(earned) and earned[0] == 0.52 and overridden == 0.93
    assert tooltip["lines"][0] == f"override {0.93 - earned[-1]:+.3f} → 0.930"
    assert tooltip["lines"][1].endswith("vetted by the platform team")
    await ui.snap("agent")
    trust = await stack.trust(agent_id)
    assert trust["records"][0]["event_type"] == "override" and trust["records"][0]["reason"].endswith(
        "vetted by the platform team"
    )

    board = await ui.goto("/ui/leaderboard?tier=excellent")
    await expect(board.locator("table")).to_contain_text(agent_id)
    await ui.snap("leaderboard")
    response = await board.goto(ui.url("/ui/leaderboard?tier=legendary"))
    assert response is not None and response.status == 422
    await expect(board.get_by_role("alert")).to_contain_text("tier must be one of")


async def test_a_plan_is_drawn_as_a_live_graph(ui: Session, stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent("/run")
    step = {"type": "echo", "required_capabilities": [tag], "input": {"delay_seconds": 0.5}}
    plan = {
        "name": "fan-out",
        "steps": [
            {"name": "fetch", **step, "input": {"delay_seconds": 3}},
            {"name": "left", "depends_on": ["fetch"], **step},
            {"name": "right", "depends_on": ["fetch"], **step},
            {"name": "join", "depends_on": ["left", "right"], **step},
        ],
    }
    created = await stack.http.post("/v1/plans", headers=auth(key), json=plan)
    assert created.status_code == 202, created.text
    plan_id = created.json()["id"]

    await ui.sign_in(key)
    page = await ui.goto("/ui/compositions")
    await page.get_by_role("link", name=plan_id).click()
    await expect(page.locator("g.node")).to_have_count(4)
    await expect(page.locator("path.edge")).to_have_count(4)
    assert await page.locator("g.node[data-step='join']").get_attribute("data-status") == "pending"
    await expect(page.locator("g.node[data-step='join']")).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    await expect(page.locator("g.node[data-status='succeeded']")).to_have_count(4)
    await expect(page.locator("h1")).to_contain_text("succeeded")
    await ui.snap("plan")

    page = await ui.goto("/ui")  # the plan's four steps in the client's overview, the agent's tag in capacity
    await expect(page.locator("[data-field='finished_last_hour']")).to_have_text("4")
    await expect(page.locator("#capacity-table")).to_contain_text(tag)
    await ui.snap("overview")


async def test_a_waiting_task_says_why_and_bad_input_gets_a_clear_error(ui: Session, stack: Stack) -> None:
    _, tag = await stack.register_agent("/hang", max_concurrency=1)
    key, _ = await stack.new_key()
    busy = await stack.submit(key, required_capabilities=[tag], timeout_seconds=60)
    await stack.wait_for(key, busy["id"], {"running"})
    waiting = await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=60)
    try:
        await ui.sign_in(key)
        page = await ui.goto(f"/ui/tasks/{waiting['id']}")
        reason = page.locator("#status-reason")
        await expect(reason).to_contain_text("Why it is waiting:", timeout=LIVE)
        await expect(reason).to_contain_text("at capacity")
        await expect(page.locator("#task-status")).to_have_text("routing")
        # The dispatch queue's view of the wait, when the read model has one, is on the page as the API has it.
        api_view = (await stack.http.get(f"/v1/tasks/{waiting['id']}", headers=auth(key))).json()
        if api_view.get("waiting"):
            await page.reload()
            await expect(page.locator("#waiting")).to_contain_text(f"of {api_view['waiting']['waiting_total']} waiting")
            await ui.snap("task-waiting")
        else:
            await expect(page.locator("#waiting")).to_have_count(0)
        await expect(page.locator("[data-field='queue.routing']")).to_have_count(0)  # not the overview
        overview = await ui.goto("/ui")
        await expect(overview.locator("[data-field='queue.routing']")).to_have_text("1")
        waiting_now = await ui.chart(
            "#throughput-chart",
            "chart => chart.data.datasets.find(d => d.label === 'waiting for an agent').data.at(-1)",
        )
        assert waiting_now == 1
        await expect(overview.locator("[data-field='queue.oldest_wait_seconds']")).to_have_text(re.compile(r"^\d+ s$"))

        token = await (await ui.goto("/ui/tasks")).locator("input[name=csrf_token]").first.input_value()
        bad = await ui.context.request.post(
            ui.url("/ui/tasks"), form={"csrf_token": token, "type": "echo", "input": "{not json"}
        )
        assert bad.status == 422 and "input is not valid JSON" in await bad.text()
        bad = await ui.context.request.post(
            ui.url("/ui/tasks"), form={"csrf_token": token, "type": "echo", "input": '{"x": NaN}'}
        )
        assert bad.status == 422 and "input.x" in await bad.text()  # the API's JSON rule, naming the field
        bad = await ui.context.request.post(
            ui.url("/ui/tasks"), form={"csrf_token": token, "type": "echo", "priority": "11", "input": "{}"}
        )
        assert bad.status == 422 and "priority" in await bad.text()
        missing = await ui.goto("/ui/tasks?status=lost")
        await expect(missing.get_by_role("alert")).to_contain_text("status must be one of")
    finally:
        for task in (waiting, busy):
            await stack.http.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(key))


async def test_llm_cost_shows_on_the_overview_and_usage_and_admins_read_the_audit_log(
    ui: Session, stack: Stack
) -> None:
    agent_id, _ = await stack.register_agent("/run")
    key, client_id = await stack.new_key()
    # A settled LLM call as the call_llm activity records it (tests/e2e/llm run real ones; here only the pages matter).
    async with stack.db.transaction() as session:
        for client, usd in ((client_id, 0.056), ("someone-else", 1.0)):
            session.add(
                LlmCall(
                    id=f"task:t-{agent_id}-{client}:1",
                    client_id=client,
                    agent_id=agent_id,
                    day=datetime.now(UTC).date().isoformat(),
                    status="succeeded",
                    model_group="e2e",
                    deployment_id="e2e-primary",
                    provider="fake-a",
                    cost_usd=usd,
                    prompt_tokens=40,
                    completion_tokens=8,
                    total_tokens=48,
                )
            )
    cost = (await stack.http.get("/v1/usage", headers=auth(key))).json()["total"]["cost_usd"]
    assert cost == 0.056

    await ui.sign_in(key)
    page = await ui.goto("/ui")
    await expect(page.locator("[data-field='llm_cost_today_usd']")).to_have_text(f"${cost:.4f}")
    page = await ui.goto("/ui/usage")
    await expect(page.locator("main")).to_contain_text(agent_id)
    await expect(page.locator("main")).to_contain_text(f"{cost:.6f}")
    await expect(page.locator("main")).not_to_contain_text("1.000000")  # another client's call
    await expect(page.locator("main")).not_to_contain_text("someone-else")
    await ui.snap("usage")
    response = await page.goto(ui.url("/ui/audit"))
    assert response is not None and response.status == 403
    await ui.context.clear_cookies()

    await ui.sign_in(stack.admin_key)
    page = await ui.goto(f"/ui/audit?resource_id={agent_id}")
    await expect(page.locator("table.audit")).to_contain_text("POST")
    await expect(page.locator("table.audit")).to_contain_text("/v1/agents")
    await ui.snap("audit")


async def test_the_audit_log_pages_to_older_entries(ui: Session, stack: Stack) -> None:
    resource = f"paged-{time.monotonic_ns()}"
    async with stack.db.transaction() as session:
        session.add_all(
            AuditEntry(
                method="PATCH",
                route="/v1/agents/{agent_id}",
                path=f"/v1/agents/{resource}",
                resource_id=resource,
                status_code=200,
                request_id=f"req-{n}",
                user_agent=f"entry-{n}",
            )
            for n in range(101)
        )
    await ui.sign_in(stack.admin_key)
    page = await ui.goto(f"/ui/audit?resource_id={resource}")
    rows = page.locator("table.audit tbody tr")
    await expect(rows).to_have_count(100)  # a page
    await page.get_by_role("link", name="Older entries →").click()
    await expect(rows).to_have_count(1)  # the oldest, on the next page (its cursor is the list's opaque one)
    assert "cursor=audit." in page.url


async def test_assets_are_served_locally_and_revalidated(stack: Stack) -> None:
    for path in (
        "/ui/static/vendor/htmx-2.0.11.min.js",
        "/ui/static/vendor/chart-4.6.1.umd.min.js",
        "/ui/static/ui.js",
    ):
        first = await stack.http.get(path)
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache", path
        again = await stack.http.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304, path
    assert (await stack.http.get("/ui/static/../session.py")).status_code == 404
    assert (await stack.http.get("/ui/static/%2e%2e/session.py")).status_code == 404
    login = await stack.http.get("/ui/login")
    assert "script-src 'self'" in login.headers["content-security-policy"]
