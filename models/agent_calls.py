"""The agent-call protocol beyond the signed request: long-running calls completed later through the API.

AINS sends a call through the queue with ``X-AINS-Completion-Token`` (the Temporal task token of the call,
url-safe base64) and ``X-AINS-Heartbeat-Timeout`` (seconds); an inline call (a fast agent's, a local activity)
carries neither and must be answered within the call. An agent that answers **202** has accepted the call and will finish
it later: it heartbeats (``POST /v1/agent-calls/heartbeat``) more often than the heartbeat timeout and ends
with ``POST /v1/agent-calls/complete``, both signed like AINS's own requests (``X-AINS-Timestamp`` and
``X-AINS-Signature`` over the raw body with the agent signing secret). The task's workflow waits durably
meanwhile (Temporal asynchronous activity completion); no HTTP connection stays open.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from ains.models.common import StrictModel

COMPLETION_TOKEN_HEADER = "X-AINS-Completion-Token"
HEARTBEAT_TIMEOUT_HEADER = "X-AINS-Heartbeat-Timeout"
ACCEPTED_LATER = 202
MAX_TOKEN_CHARS = 8192


class AgentCallHeartbeat(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS, description="X-AINS-Completion-Token of the call.")
    details: Any = Field(default=None, description="Progress, shown in the Temporal UI as the call's heartbeat.")


class AgentCallCompletion(StrictModel):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    task_id: str = Field(min_length=1, max_length=64)
    attempt: int = Field(ge=1)
    output: dict[str, Any] | None = Field(default=None, description="The answer, as a synchronous agent's 2xx body.")
    error: str | None = Field(default=None, max_length=2000, description="The call failed (the task re-routes).")
    duration_ms: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_outcome(self) -> AgentCallCompletion:
        if (self.output is None) == (self.error is None):
            raise ValueError("give exactly one of output and error")
        return self


class AgentCallPayload(BaseModel):
    """The JSON body of every call AINS sends to an agent (signed). Unknown fields are ignored."""

    task_id: str
    attempt: int = Field(ge=1)
    type: str
    input: dict[str, Any] = Field(default_factory=dict)


class AgentCallHeartbeatAnswer(BaseModel):
    cancelled: bool = Field(description="The task was cancelled: stop working; completing is no longer needed.")
