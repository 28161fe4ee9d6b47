"""Postgres refusing connections during load (through a TCP proxy we cut; the shared server is untouched).

While it is down /ready answers 503 and no request is accepted that could be lost; once it is back every
accepted task completes, once, with one trust record per attempt.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.engine import make_url

from ains.api.app import create_app
from ains.workers.worker import resolve_queues, run_workers
from tests.e2e.faults.faultkit import TcpProxy, ledger
from tests.support.servers import serve
from tests.support.stack import Stack, auth

OUTAGE_SECONDS = 3.0


async def test_tasks_survive_postgres_refusing_connections(stack: Stack) -> None:
    if stack.backend != "postgres":
        pytest.skip("Postgres outage applies to the Postgres backend")
    url = make_url(stack.settings.effective_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = stack.settings.model_copy(update={"database_url": proxied})
    _, tag = await stack.register_agent("/run", max_concurrency=100)
    key, _ = await stack.new_key()

    # Only workers that reach the DB through the proxy may run tasks during this test.
    await stack.stop_worker()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_workers(settings, resolve_queues(["all"]), stop))
    api = await serve(create_app(settings))
    accepted: list[str] = []
    refused: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:

            async def submit(i: int) -> None:
                response = await http.post(
                    "/v1/tasks",
                    headers=auth(key),
                    json={"type": "echo", "input": {"delay_seconds": 1, "i": i}, "required_capabilities": [tag]},
                )
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
                else:
                    refused.append(response.status_code)

            await asyncio.gather(*(submit(i) for i in range(10)))
            assert len(accepted) == 10, refused
            await asyncio.sleep(0.5)  # the calls are at the agent; their results will need the DB

            await proxy.cut()
            ready = await http.get("/ready")
            assert ready.status_code == 503, ready.text
            assert "database" in ready.json()["failing"]
            # Requests during the outage: none may be accepted and then lost.
            await asyncio.gather(*(submit(100 + i) for i in range(5)))
            await asyncio.sleep(OUTAGE_SECONDS)
            await proxy.restore()

            for _ in range(100):
                if (await http.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("API not ready after the database came back")

        assert len(accepted) >= 10
        done = await asyncio.gather(*(stack.wait_for(key, task_id, timeout=60) for task_id in accepted))
        assert [d["status"] for d in done] == ["succeeded"] * len(accepted), done
        assert all(d["attempts"] == 1 for d in done), done
        book = await ledger(stack.db, accepted)
        assert sorted((t, a) for t, a, _, _ in book["records"]) == sorted((t, a) for t, a, _, _ in book["attempts"])
        assert len(book["attempts"]) == len(accepted)
        assert book["duplicate_records"] == []
        assert refused == [503] * 5, f"during the outage POST answered {refused}; nothing may be accepted and lost"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
        await api.stop()
        await stack.start_worker()


async def test_requests_during_postgres_outage_answer_503(stack: Stack) -> None:
    """Authenticated requests while the DB refuses connections are 503 ``unavailable``, never 500."""
    if stack.backend != "postgres":
        pytest.skip("Postgres outage applies to the Postgres backend")
    url = make_url(stack.settings.effective_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    key, _ = await stack.new_key()
    api = await serve(create_app(stack.settings.model_copy(update={"database_url": proxied})))
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            task = (await http.post("/v1/tasks", headers=auth(key), json={"type": "echo"})).json()
            await proxy.cut()
            posted = await http.post("/v1/tasks", headers=auth(key), json={"type": "echo"})
            read = await http.get(f"/v1/tasks/{task['id']}", headers=auth(key))
            await proxy.restore()
        assert (posted.status_code, read.status_code) == (503, 503), (posted.text, read.text)
        assert posted.json()["error"]["code"] == "unavailable"
    finally:
        await api.stop()
