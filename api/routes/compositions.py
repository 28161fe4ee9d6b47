"""/v1/task-chains and /v1/plans: compositions of tasks."""

from __future__ import annotations

from fastapi import APIRouter

from ains.api.deps import State, TasksRead, TasksWrite, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.composition import chains as compositions
from ains.models.chains import ChainCreate
from ains.models.plans import PlanCreate, PlanView

chains = APIRouter(prefix="/v1/task-chains", tags=["chains"], route_class=SafeJSONRoute)
plans = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=SafeJSONRoute)


@chains.post("", status_code=202, response_model=PlanView)
async def create_chain(chain: ChainCreate, state: State, principal: TasksWrite) -> PlanView:
    """Run steps in order; each step's output is merged into the next step's input (its own keys win),
    and ``{"$ref": "steps.<name>.output.<key>"}`` picks any earlier output."""
    return await compositions.create_chain(state.db, await state.temporal(), state.settings, principal.client_id, chain)


@chains.get("/{chain_id}", response_model=PlanView)
async def get_chain(chain_id: str, state: State, principal: TasksRead) -> PlanView:
    async with state.db.session() as session:
        return await compositions.get_composition(session, state.settings, "chain", chain_id, visible_client(principal))


@chains.post("/{chain_id}/cancel", status_code=202, response_model=PlanView)
async def cancel_chain(chain_id: str, state: State, principal: TasksWrite) -> PlanView:
    return await compositions.cancel_composition(
        state.db, await state.temporal(), state.settings, "chain", chain_id, visible_client(principal)
    )


@plans.post("", status_code=202, response_model=PlanView)
async def create_plan(plan: PlanCreate, state: State, principal: TasksWrite) -> PlanView:
    """Validate the DAG (cycles, unknown references, duplicate names, capabilities nobody offers, depth and
    size) and run it: ready steps in parallel, dependents of a failed step skipped."""
    return await compositions.create_plan(state.db, await state.temporal(), state.settings, principal.client_id, plan)


@plans.get("/{plan_id}", response_model=PlanView)
async def get_plan(plan_id: str, state: State, principal: TasksRead) -> PlanView:
    async with state.db.session() as session:
        return await compositions.get_composition(session, state.settings, "plan", plan_id, visible_client(principal))


@plans.post("/{plan_id}/cancel", status_code=202, response_model=PlanView)
async def cancel_plan(plan_id: str, state: State, principal: TasksWrite) -> PlanView:
    return await compositions.cancel_composition(
        state.db, await state.temporal(), state.settings, "plan", plan_id, visible_client(principal)
    )
