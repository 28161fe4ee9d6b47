"""The HTTP side of an SDK agent: verification, dispatch, long-running calls, registration and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ains.core.platform.signing import SIGNATURE_HEADER
from ains.core.webhooks.verify import WebhookVerificationError, verify_webhook
from ains.models.agent_calls import (
    ACCEPTED_LATER,
    COMPLETION_TOKEN_HEADER,
    HEARTBEAT_TIMEOUT_HEADER,
    AgentCallCompletion,
    AgentCallPayload,
)
from ains.models.agents import AgentUpdate
from ains.sdk.agent import Agent, CallCancelled, CallContext, Skill
from ains.sdk.agent_calls import AgentCallsApi
from ains.sdk.client import AsyncClient
from ains.sdk.errors import ClientError, Conflict
from ains.sdk.ledger import Answer, CallKey, SeenSignatures

log = logging.getLogger("ains.sdk.agent")
DEFAULT_CALL_HEARTBEAT_SECONDS = 1.0


def _reject(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


async def verified_call(request: Request) -> AgentCallPayload:
    """A FastAPI dependency: the call's payload once its signature, freshness and first use are checked."""
    agent: Agent = request.app.state.agent
    seen: SeenSignatures = request.app.state.seen_signatures
    raw = await request.body()
    try:
        verify_webhook(agent.signing_secret, raw, request.headers, tolerance_seconds=agent.tolerance_seconds)
    except WebhookVerificationError as exc:
        raise _reject(401, f"bad AINS signature: {exc}") from None
    if not seen.first_use(request.headers[SIGNATURE_HEADER]):
        raise _reject(401, "replayed request: this signature was already used")
    try:
        payload = AgentCallPayload.model_validate_json(raw)
    except ValidationError as exc:
        raise _reject(400, f"not an AINS call: {exc.errors(include_url=False)}") from None
    agent.deliveries[f"{payload.task_id}:{payload.attempt}"] += 1
    return payload


class LaterCalls:
    """Long-running calls: accepted with 202, heartbeated and completed through the API."""

    def __init__(self, agent: Agent, api: AgentCallsApi) -> None:
        self._agent = agent
        self._api = api
        self._tokens: dict[CallKey, str] = {}
        self._finished: dict[CallKey, AgentCallCompletion] = {}
        self._resends: set[asyncio.Task[bool]] = set()

    def accept(
        self, key: CallKey, skill: Skill, payload: AgentCallPayload, token: str, heartbeat_timeout: float
    ) -> None:
        """Start the call, or, delivered again (Temporal retried the activity), finish it under the new token."""
        self._tokens[key] = token
        done = self._finished.pop(key, None)
        if done is not None:  # finished, but AINS asks again: the earlier completion did not reach it
            resend = asyncio.create_task(self._api.complete(done.model_copy(update={"token": token})))
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
            return
        interval = min(DEFAULT_CALL_HEARTBEAT_SECONDS, heartbeat_timeout / 3) if heartbeat_timeout > 0 else 1.0
        self._agent.ledger.run(key, lambda: self._work(key, skill, payload, interval))

    async def _beat(self, key: CallKey, details: Any = None) -> bool:
        try:
            return await self._api.heartbeat(self._tokens[key], details)
        except ClientError as exc:  # AINS unreachable for a moment: Temporal's heartbeat timeout decides
            log.warning("heartbeat for %s failed: %s", key, exc)
            return True

    async def _work(self, key: CallKey, skill: Skill, payload: AgentCallPayload, interval: float) -> Answer:
        async def report(details: Any) -> None:
            if not await self._beat(key, details):
                raise CallCancelled(f"task {payload.task_id} was cancelled")

        call = CallContext(payload.task_id, payload.attempt, payload.type, _reporter=report)
        runner = asyncio.create_task(self._agent.execute(skill, payload.input, call))
        while not runner.done():
            await asyncio.wait({runner}, timeout=interval)
            if not runner.done() and not await self._beat(key):
                runner.cancel()
        try:
            answer = runner.result()
        except (asyncio.CancelledError, CallCancelled):
            log.info("task %s was cancelled; its call stopped", payload.task_id)
            return Answer(499, {"error": "cancelled"})
        completion = AgentCallCompletion(
            token=self._tokens[key],
            task_id=payload.task_id,
            attempt=payload.attempt,
            output=answer.body if answer.status_code < 300 else None,
            error=None if answer.status_code < 300 else str(answer.body.get("error"))[:2000],
            duration_ms=round((time.monotonic() - call.received_at) * 1000, 3),
        )
        try:
            delivered = await self._api.complete(completion)
        except ClientError as exc:  # AINS unreachable through every retry
            log.warning("completion of task %s attempt %s not delivered: %s", *key, exc)
            delivered = False
        if not delivered:
            self._finished[key] = completion  # sent again when AINS delivers the call again, under a fresh token
        return answer


async def _register(agent: Agent, client: AsyncClient, endpoint_url: str, health_url: str | None) -> None:
    spec = agent.registration(endpoint_url, health_url)
    try:
        await client.agents.register(spec)
    except Conflict:  # registered before: bring it up to date
        change = AgentUpdate.model_validate(
            spec.model_dump(include={"display_name", "endpoint_url", "health_url", "capabilities", "max_concurrency"})
        )
        await client.agents.update(agent.id, change)


async def _heartbeat_forever(agent: Agent, client: AsyncClient, interval: float) -> None:
    while True:
        try:
            await client.agents.heartbeat(agent.id)
        except ClientError as exc:
            log.warning("registry heartbeat of %s failed: %s", agent.id, exc)
        await asyncio.sleep(interval)


def build_app(
    agent: Agent,
    api_url: str | None,
    api_key: str | None,
    endpoint_url: str | None,
    health_url: str | None,
    registry_heartbeat_seconds: float,
) -> FastAPI:
    calls_api = AgentCallsApi(api_url, agent.signing_secret) if api_url else None
    later = LaterCalls(agent, calls_api) if calls_api else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        client = AsyncClient(api_url, api_key) if api_key and endpoint_url else None
        beating: asyncio.Task[None] | None = None
        if client is not None and endpoint_url is not None:
            await _register(agent, client, endpoint_url, health_url)
            beating = asyncio.create_task(_heartbeat_forever(agent, client, registry_heartbeat_seconds))
        try:
            yield
        finally:
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            if client is not None:
                await client.aclose()
            if calls_api is not None:
                await calls_api.aclose()

    app = FastAPI(title=f"AINS agent {agent.id}", lifespan=lifespan)
    app.state.agent = agent
    app.state.seen_signatures = SeenSignatures(agent.tolerance_seconds)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "agent_id": agent.id, "capabilities": [c.model_dump() for c in agent.capabilities]}

    @app.post(agent.path)
    async def run(request: Request) -> JSONResponse:
        payload = await verified_call(request)
        skill = agent.skill_for(payload.type)
        if skill is None:
            raise _reject(
                400, f"agent {agent.id} cannot do task type {payload.type!r}; it offers {sorted(agent.skills)}"
            )
        key = (payload.task_id, payload.attempt)
        token = request.headers.get(COMPLETION_TOKEN_HEADER)
        if skill.long_running and token and later is not None:
            timeout = float(request.headers.get(HEARTBEAT_TIMEOUT_HEADER) or 0)
            later.accept(key, skill, payload, token, timeout)
            return JSONResponse({"accepted": True, "task_id": payload.task_id}, status_code=ACCEPTED_LATER)
        call = CallContext(payload.task_id, payload.attempt, payload.type)
        answer = await asyncio.shield(agent.run_once(key, skill, payload.input, call))
        return JSONResponse(answer.body, status_code=answer.status_code)

    return app
