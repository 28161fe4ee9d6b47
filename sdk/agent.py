"""Write an AINS agent as decorated Python functions, one per capability:

    from ains.sdk.agent import Agent, CallContext

    agent = Agent("word-counter", signing_secret="...")

    @agent.capability("word_count", version="1.2")
    async def word_count(input: dict, call: CallContext) -> dict:
        return {"words": len(input["text"].split())}

    app = agent.app(api_url="http://127.0.0.1:8000", api_key="ains_...", endpoint_url="http://127.0.0.1:9000/run")

The app (ASGI, FastAPI) verifies every call's signature and timestamp, refuses replayed requests, runs each
(task id, attempt) once however often it is delivered, answers ``{"output": <what the function returned>}``,
and, given an API key and its own URL, registers the agent and heartbeats. A call is dispatched on the task's
type (lowercased) to the capability of that tag. The first parameter may be annotated with a pydantic model:
the task input is validated into it (an invalid input fails the call with the reason). Raise ``AgentError``
to fail a call with a message; AINS then re-routes the task.

``@agent.capability(..., long_running=True)`` accepts the call at once (HTTP 202) and finishes it later through
the API (``models.agent_calls``): the SDK heartbeats for it, ``await call.progress(...)`` reports progress, and
a cancelled task cancels the function. A call without a completion token (an inline call) is answered within it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ValidationError

from ains.models.agents import AgentCreate, Capability
from ains.sdk.ledger import Answer, CallKey, CallLedger

log = logging.getLogger("ains.sdk.agent")
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_REMEMBERED_CALLS = 10_000


class AgentError(Exception):
    """Fail the call with this message (AINS records it and re-routes the task)."""


class CallCancelled(Exception):
    """The task was cancelled while a long-running call was working on it."""


@dataclass
class CallContext:
    task_id: str
    attempt: int
    type: str
    received_at: float = field(default_factory=time.monotonic)
    _reporter: Callable[[Any], Any] | None = None

    async def progress(self, details: Any) -> None:
        """Report progress of a long-running call (a heartbeat with details); a no-op for quick calls.
        Raises ``CallCancelled`` when the task has been cancelled."""
        if self._reporter is not None:
            await self._reporter(details)


@dataclass(frozen=True)
class Skill:
    tag: str
    version: str
    function: Callable[..., Any]
    input_model: type[BaseModel] | None
    wants_call: bool
    long_running: bool


def _skill(tag: str, version: str, function: Callable[..., Any], long_running: bool) -> Skill:
    parameters = list(inspect.signature(function).parameters.values())
    if not 1 <= len(parameters) <= 2:
        raise TypeError(f"{function.__name__} must take (input) or (input, call)")
    if long_running and not inspect.iscoroutinefunction(function):
        raise TypeError(f"{function.__name__}: a long-running capability must be an async function")
    hints = get_type_hints(function)
    annotation = hints.get(parameters[0].name)
    model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    Capability(tag=tag, version=version)  # the same rules as registration: fail at import, not at register
    return Skill(tag, version, function, model, len(parameters) == 2, long_running)


def _output(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class Agent:
    def __init__(
        self,
        agent_id: str,
        *,
        signing_secret: str,
        display_name: str | None = None,
        max_concurrency: int = 4,
        path: str = "/run",
        tolerance_seconds: int = 300,
        remembered_calls: int = DEFAULT_REMEMBERED_CALLS,
    ) -> None:
        self.id = agent_id
        self.display_name = display_name or agent_id
        self.signing_secret = signing_secret
        self.max_concurrency = max_concurrency
        self.path = path
        self.tolerance_seconds = tolerance_seconds
        self.skills: dict[str, Skill] = {}
        self.ledger = CallLedger(remembered_calls)
        self.deliveries: Counter[str] = Counter()  # "<task>:<attempt>" -> how often it reached this agent

    # --- declaring ------------------------------------------------------------------------------------------
    def capability(self, tag: str, *, version: str = "1.0", long_running: bool = False) -> Callable[[F], F]:
        def decorate(function: F) -> F:
            if tag in self.skills:
                raise ValueError(f"capability {tag!r} is declared twice")
            self.skills[tag] = _skill(tag, version, function, long_running)
            return function

        return decorate

    @property
    def capabilities(self) -> list[Capability]:
        return [Capability(tag=s.tag, version=s.version) for s in self.skills.values()]

    def registration(self, endpoint_url: str, health_url: str | None = None) -> AgentCreate:
        return AgentCreate.model_validate(
            {
                "id": self.id,
                "display_name": self.display_name,
                "endpoint_url": endpoint_url,
                "health_url": health_url,
                "capabilities": [c.model_dump() for c in self.capabilities],
                "max_concurrency": self.max_concurrency,
            }
        )

    def executions(self, task_id: str, attempt: int) -> int:
        """How often the function for this call actually ran (1 however often it was delivered)."""
        return self.ledger.executions.get((task_id, attempt), 0)

    # --- running ----------------------------------------------------------------------------------------------
    def skill_for(self, task_type: str) -> Skill | None:
        return self.skills.get(task_type.lower())

    async def execute(self, skill: Skill, task_input: dict[str, Any], call: CallContext) -> Answer:
        """Run the function once; its outcome becomes the HTTP answer AINS records."""
        try:
            argument: Any = skill.input_model.model_validate(task_input) if skill.input_model else task_input
        except ValidationError as exc:
            return Answer(422, {"error": f"invalid input for {skill.tag}: {exc.errors(include_url=False)}"})
        args = (argument, call) if skill.wants_call else (argument,)
        try:
            if inspect.iscoroutinefunction(skill.function):
                value = await skill.function(*args)
            else:
                value = await asyncio.to_thread(skill.function, *args)
        except AgentError as exc:
            return Answer(500, {"error": str(exc)})
        except CallCancelled:
            raise
        except Exception as exc:
            log.exception("capability %s failed on task %s attempt %s", skill.tag, call.task_id, call.attempt)
            return Answer(500, {"error": f"{type(exc).__name__}: {exc}"})
        try:
            json.dumps(_output(value))
        except (TypeError, ValueError) as exc:
            return Answer(500, {"error": f"{skill.tag} returned something that is not JSON: {exc}"})
        return Answer(200, {"output": _output(value)})

    def run_once(
        self, key: CallKey, skill: Skill, task_input: dict[str, Any], call: CallContext
    ) -> asyncio.Task[Answer]:
        return self.ledger.run(key, lambda: self.execute(skill, task_input, call))

    def app(
        self,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        endpoint_url: str | None = None,
        health_url: str | None = None,
        registry_heartbeat_seconds: float = 30.0,
    ) -> Any:
        """The ASGI app. With ``api_key`` and ``endpoint_url`` it registers the agent (or updates it) at startup
        and heartbeats every ``registry_heartbeat_seconds``; ``api_url`` also serves long-running calls."""
        from ains.sdk.agent_http import build_app

        return build_app(self, api_url, api_key, endpoint_url, health_url, registry_heartbeat_seconds)

    def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 9000,
        api_url: str | None = None,
        api_key: str | None = None,
        public_url: str | None = None,
        register: bool = True,
    ) -> None:
        """Run the agent with uvicorn (blocking). ``AINS_URL``/``AINS_API_KEY`` (or a profile) fill in the API."""
        import uvicorn

        from ains.sdk.config import resolve_config

        config = resolve_config(url=api_url, api_key=api_key)
        base = (public_url or f"http://{host}:{port}").rstrip("/")
        app = self.app(
            api_url=config.url,
            api_key=config.api_key if register else None,
            endpoint_url=f"{base}{self.path}",
            health_url=f"{base}/health",
        )
        uvicorn.run(app, host=host, port=port, log_level="warning")
