"""Clients retry POST /v1/tasks with the same idempotency key while the API process is SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select

from ains.models.tables import Task
from tests.e2e.faults.faultkit import dead_port, kill, spawn_api
from tests.support.stack import SIGNING_SECRET, Stack, auth

CLIENTS = 8
ANSWERS_EACH = 3


async def _wait_healthy(url: str, timeout: float = 30) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        for _ in range(int(timeout / 0.1)):
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("API process did not start")


async def test_idempotent_retries_across_api_restart_make_one_task_each(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run", max_concurrency=100)
    key, client_id = await stack.new_key()
    port = dead_port()
    env = {
        "AINS_DATABASE_URL": stack.settings.effective_database_url,
        "AINS_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "AINS_TEMPORAL_NAMESPACE": stack.settings.temporal_namespace,
        "AINS_REDIS_URL": stack.settings.redis_url,
        "AINS_AGENT_SIGNING_SECRET": SIGNING_SECRET,
        "AINS_AGENT_HEARTBEAT_TIMEOUT_SECONDS": "2",
        "AINS_RETRY_BACKOFF_SECONDS": "0.1",
    }
    url = f"http://127.0.0.1:{port}"
    api = spawn_api(env, port)
    restarted = None
    try:
        await _wait_healthy(url)
        answers: dict[str, list[str]] = {}
        failures: dict[str, list[str]] = {}
        first_answer = asyncio.Event()

        async def client(i: int) -> None:
            idem = f"order-{uuid.uuid4().hex[:8]}"
            answers[idem], failures[idem] = [], []
            body = {"type": "echo", "input": {"i": i, "delay_seconds": 0.2}, "required_capabilities": [tag]}
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                while len(answers[idem]) < ANSWERS_EACH:
                    try:
                        response = await http.post(
                            "/v1/tasks", headers={**auth(key), "Idempotency-Key": idem}, json=body
                        )
                    except httpx.HTTPError as exc:
                        failures[idem].append(type(exc).__name__)
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code == 202:
                        answers[idem].append(response.json()["id"])
                        first_answer.set()
                    else:
                        failures[idem].append(str(response.status_code))
                        assert response.status_code >= 500, response.text
                    await asyncio.sleep(0.05)

        clients = asyncio.gather(*(client(i) for i in range(CLIENTS)))
        await asyncio.wait_for(first_answer.wait(), 30)
        kill(api)  # SIGKILL while requests are in flight
        restarted = spawn_api(env, port)
        await asyncio.wait_for(clients, 60)

        assert any(failures.values()), "the restart should have interrupted some requests"
        for idem, ids in answers.items():
            assert len(set(ids)) == 1, f"{idem} answered with different tasks: {ids}"
        task_ids = [ids[0] for ids in answers.values()]
        async with stack.db.session() as session:
            per_key = (
                await session.execute(
                    select(Task.idempotency_key, func.count())
                    .where(Task.client_id == client_id)
                    .group_by(Task.idempotency_key)
                )
            ).all()
        assert sorted(per_key) == sorted((idem, 1) for idem in answers), per_key
        done = await asyncio.gather(*(stack.wait_for(key, t, timeout=60) for t in task_ids))
        assert [d["status"] for d in done] == ["succeeded"] * CLIENTS, done
        async with httpx.AsyncClient(base_url=stack.demo_url) as http:
            calls = (await http.get("/calls")).json()
        assert [calls.get(f"{t}:1") for t in task_ids] == [1] * CLIENTS, "one workflow (one agent call) per task"
    finally:
        kill(api)
        if restarted is not None:
            kill(restarted)
