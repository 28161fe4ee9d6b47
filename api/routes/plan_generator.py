"""POST /v1/plans/generate: an LLM proposes a plan over the registered agents' capabilities, for review."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ains.api.deps import State, TasksWrite
from ains.api.json_body import SafeJSONRoute
from ains.api.routes.providers import llm_service
from ains.core.composition.chains import create_plan
from ains.core.composition.plan_generator import generate_plan
from ains.models.llm import PlanGenerateRequest, PlanGenerateResponse

router = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=SafeJSONRoute)


@router.post("/generate", response_model=PlanGenerateResponse)
async def generate(
    body: PlanGenerateRequest, request: Request, state: State, principal: TasksWrite
) -> PlanGenerateResponse:
    """The plan is validated exactly like a hand-written one. Output that is not JSON, breaks the schema or
    the DAG rules is rejected with 422 and every error; a plan needing capabilities no agent offers yet comes
    back with ``valid: false`` and its problems. The call is charged to the client's LLM budget. With
    ``start: true`` a valid plan is started at once (like ``POST /v1/plans``) and ``plan_id`` names it."""
    generated = await generate_plan(llm_service(request, state), principal.client_id, body)
    if body.start and generated.valid:
        view = await create_plan(state.db, await state.temporal(), state.settings, principal.client_id, generated.plan)
        generated = generated.model_copy(update={"started": True, "plan_id": view.id})
    return generated
