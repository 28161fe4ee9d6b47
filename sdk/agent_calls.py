"""An agent finishing a long-running call through the API: signed heartbeats and the completion."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from ains.core.platform.signing import signed_headers
from ains.models.agent_calls import AgentCallCompletion, AgentCallHeartbeat, AgentCallHeartbeatAnswer
from ains.sdk.errors import ApiError, NotFound, TransportError, error_from_response
from ains.sdk.transport import RETRY_STATUSES, USER_AGENT, RetryPolicy

HEARTBEAT_PATH = "/v1/agent-calls/heartbeat"
COMPLETE_PATH = "/v1/agent-calls/complete"


class AgentCallsApi:
    def __init__(self, api_url: str, signing_secret: str, retry: RetryPolicy | None = None) -> None:
        self._secret = signing_secret
        self._retry = retry or RetryPolicy(max_retries=8)
        self._http = httpx.AsyncClient(base_url=api_url, timeout=15, headers={"User-Agent": USER_AGENT})

    async def _post(self, path: str, body: bytes) -> httpx.Response:
        for retry in range(self._retry.max_retries + 1):
            headers = {"Content-Type": "application/json", **signed_headers(self._secret, body)}
            try:
                response = await self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:  # heartbeats and completions are safe to repeat
                if retry == self._retry.max_retries:
                    raise TransportError(f"POST {path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self._retry.wait(retry, None))
                continue
            if response.status_code in RETRY_STATUSES and retry < self._retry.max_retries:
                await asyncio.sleep(self._retry.wait(retry, None))
                continue
            if response.status_code >= 400:
                raise error_from_response(response)
            return response
        raise AssertionError("unreachable")

    async def heartbeat(self, token: str, details: Any = None) -> bool:
        """True while AINS still waits for the call; False once the task was cancelled or the call expired."""
        body = AgentCallHeartbeat(token=token, details=details).model_dump_json().encode()
        try:
            response = await self._post(HEARTBEAT_PATH, body)
        except NotFound:
            return False
        return not AgentCallHeartbeatAnswer.model_validate_json(response.content).cancelled

    async def complete(self, completion: AgentCallCompletion) -> bool:
        """True when AINS took the answer; False when nobody waits for it any more (cancelled, expired)."""
        try:
            await self._post(COMPLETE_PATH, json.dumps(completion.model_dump(mode="json")).encode())
        except NotFound:
            return False
        except ApiError as exc:
            if exc.code == "cancelled":
                return False
            raise
        return True

    async def aclose(self) -> None:
        await self._http.aclose()
