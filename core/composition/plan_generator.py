"""The plan generator: an LLM proposes a plan over the capabilities of the registered agents.

The answer is parsed into ``models.plans.PlanCreate`` and checked with ``models.plans.validate_plan``, exactly
like a hand-written plan. Output that is not JSON, does not fit the schema, or is structurally broken
(cycles, unknown or duplicate steps, bad references) is rejected with the errors and never executed.
A plan whose only problems are capabilities no agent offers yet is returned for review, marked invalid.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.llm.providers import LlmCallFailed
from ains.core.llm.service import CallContext, LlmService
from ains.core.platform.errors import InvalidInput, Unavailable
from ains.models.agents import AgentStatus
from ains.models.llm import PlanGenerateRequest, PlanGenerateResponse
from ains.models.plans import PlanCreate, PlanProblem, validate_plan
from ains.models.tables import Agent, AgentCapability

# Problems a reviewer may accept (an agent may be registered before the plan runs); all others reject.
REVIEWABLE_PROBLEMS = frozenset({"unknown_capability"})
MAX_CAPABILITIES_IN_PROMPT = 300

SYSTEM_PROMPT = """You plan work for a task-orchestration platform. Answer with ONE JSON object and nothing else:
{"name": "<short plan name>", "steps": [{"name": "<unique step name, letters/digits/_/->",
"type": "<task type>", "input": {<JSON input>}, "required_capabilities": ["<capability tag>"],
"depends_on": ["<names of earlier steps>"]}]}
Rules: use only the capability tags listed below; a step may use a dependency's output in its input as
{"$ref": "steps.<step name>.output.<path>"} and must then list that step in depends_on; no cycles."""


class PlanRejected(InvalidInput):
    """The model's plan cannot be used; ``details`` lists every error."""

    code = "invalid_generated_plan"

    def __init__(self, message: str, details: list[dict[str, Any]], raw: str) -> None:
        super().__init__(message)
        self.details = {"errors": details, "model_output": raw[:4000]}


async def offered_capabilities(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(AgentCapability.tag)
        .join(Agent, Agent.id == AgentCapability.agent_id)
        .where(Agent.status == AgentStatus.AVAILABLE.value)
        .distinct()
        .order_by(AgentCapability.tag)
    )
    return [tag for (tag,) in rows.all()]


def build_messages(goal: str, capabilities: list[str]) -> list[dict[str, str]]:
    tags = ", ".join(capabilities[:MAX_CAPABILITIES_IN_PROMPT]) or "(none registered)"
    return [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\nCapability tags offered by registered agents: {tags}"},
        {"role": "user", "content": f"Goal: {goal}"},
    ]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_plan(content: str, name: str | None = None) -> PlanCreate:
    """The model's answer as a PlanCreate; PlanRejected with every error otherwise."""
    match = _FENCE.match(content)
    text = match.group(1) if match else content.strip()
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise PlanRejected(
            f"the model's answer is not JSON: {exc}", [{"code": "invalid_json", "message": str(exc)}], content
        ) from exc
    if not isinstance(raw, dict):
        raise PlanRejected(
            "the model's answer is not a JSON object",
            [{"code": "invalid_json", "message": "expected an object"}],
            content,
        )
    raw.pop("idempotency_key", None)
    if name is not None:
        raw["name"] = name
    try:
        return PlanCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"code": "schema", "loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        first = "; ".join(f"{e['loc']}: {e['message']}" for e in errors[:3])
        raise PlanRejected(f"the model's plan does not fit the plan schema: {first}", errors, content) from exc


def check_plan(plan: PlanCreate, offered: list[str], content: str) -> list[PlanProblem]:
    problems = validate_plan(plan, set(offered))
    blocking = [p for p in problems if p.code not in REVIEWABLE_PROBLEMS]
    if blocking:
        raise PlanRejected(
            f"the model's plan is invalid: {'; '.join(p.message for p in blocking[:3])}",
            [p.model_dump() for p in problems],
            content,
        )
    return problems


async def generate_plan(service: LlmService, client_id: str, request: PlanGenerateRequest) -> PlanGenerateResponse:
    groups = service.providers.config.model_groups
    if request.model_group is None and not groups:
        raise InvalidInput(
            "no model groups are configured; set AINS_PROVIDERS_FILE (see deploy/providers.example.yaml)"
        )
    group = request.model_group if request.model_group is not None else groups[0].name
    service.providers.group(group)  # unknown group -> 422 before anything is spent
    async with service.db.session() as session:
        offered = await offered_capabilities(session)
    ctx = CallContext(call_id=f"plan:{uuid.uuid4().hex}", client_id=client_id, purpose="plan")
    try:
        answer = await service.complete(ctx, group, build_messages(request.goal, offered))
    except LlmCallFailed as exc:
        raise Unavailable(f"no deployment of model group {group!r} answered: {exc.message}") from exc
    plan = parse_plan(answer.content, request.name)
    problems = check_plan(plan, offered, answer.content)
    note = "not started: the plan has problems to resolve first" if request.start and problems else None
    return PlanGenerateResponse(
        plan=plan,
        problems=problems,
        valid=not problems,
        offered_capabilities=offered,
        llm=answer.metadata(),
        started=False,
        note=note,
    )
