"""/v1/agent-calls: long-running agents heartbeat and complete a call they accepted with 202.

Authenticated by the agent signature (``X-AINS-Timestamp``, ``X-AINS-Signature`` over the raw body with
``AINS_AGENT_SIGNING_SECRET``), as AINS signs its calls to agents; the completion token in the body names the
call. No API key is needed, so an agent holds only the secret it already verifies calls with.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ValidationError

from ains.api.deps import State
from ains.core.platform.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from ains.core.tasks import completion as agent_completion
from ains.models.agent_calls import AgentCallCompletion, AgentCallHeartbeat, AgentCallHeartbeatAnswer

router = APIRouter(prefix="/v1/agent-calls", tags=["agents"])
M = TypeVar("M", bound=BaseModel)
# Marks the routes authenticated by the agent signature instead of an API key (not in the audit log of key holders).
AGENT_SIGNATURE_AUTH = "x-ains-auth"
SIGNED = {
    AGENT_SIGNATURE_AUTH: "agent-signature",
    "parameters": [
        {"name": TIMESTAMP_HEADER, "in": "header", "required": True, "schema": {"type": "string"}},
        {"name": SIGNATURE_HEADER, "in": "header", "required": True, "schema": {"type": "string"}},
    ],
}


async def _signed_body(request: Request, state: State, model: type[M]) -> M:
    raw = await request.body()
    headers = request.headers
    if not verify(
        state.settings.agent_signing_secret, raw, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    ):
        raise HTTPException(401, "missing, wrong or stale agent signature (X-AINS-Timestamp, X-AINS-Signature)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError(exc.errors(include_url=False)) from None


def _documented(model: type[BaseModel]) -> dict[str, object]:
    return {
        **SIGNED,
        "requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}},
    }


@router.post("/heartbeat", response_model=AgentCallHeartbeatAnswer, openapi_extra=_documented(AgentCallHeartbeat))
async def heartbeat(request: Request, state: State) -> AgentCallHeartbeatAnswer:
    """Keep an accepted call alive (more often than X-AINS-Heartbeat-Timeout); ``cancelled: true`` once the
    task was cancelled: stop working. 404 when nobody waits for the call any more."""
    beat = await _signed_body(request, state, AgentCallHeartbeat)
    return await agent_completion.heartbeat(await state.temporal(), beat)


@router.post("/complete", status_code=204, openapi_extra=_documented(AgentCallCompletion))
async def complete(request: Request, state: State) -> Response:
    """Finish an accepted call with its ``output`` (as a synchronous 2xx answer) or an ``error``."""
    completion = await _signed_body(request, state, AgentCallCompletion)
    await agent_completion.complete(state.db, await state.temporal(), completion)
    return Response(status_code=204)
