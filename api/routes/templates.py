"""/v1/templates: reusable task definitions."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ains.api.deps import State, TasksRead, TasksWrite, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.composition import templates
from ains.models.templates import TemplateCreate, TemplateView

router = APIRouter(prefix="/v1/templates", tags=["templates"], route_class=SafeJSONRoute)


@router.post("", status_code=201, response_model=TemplateView)
async def create_template(spec: TemplateCreate, state: State, principal: TasksWrite) -> TemplateView:
    """Name a task type with defaults; use it with `template_id` in tasks, chain and plan steps, schedules."""
    async with state.db.transaction() as session:
        return await templates.create_template(session, principal.client_id, spec)


@router.get("", response_model=list[TemplateView])
async def list_templates(state: State, principal: TasksRead) -> list[TemplateView]:
    async with state.db.session() as session:
        return await templates.list_templates(session, visible_client(principal))


@router.get("/{template_id}", response_model=TemplateView)
async def get_template(template_id: str, state: State, principal: TasksRead) -> TemplateView:
    async with state.db.session() as session:
        return await templates.get_template(session, visible_client(principal), template_id)


@router.delete("/{template_id}", status_code=204)
async def delete_template(template_id: str, state: State, principal: TasksWrite) -> Response:
    async with state.db.transaction() as session:
        await templates.delete_template(session, visible_client(principal), template_id)
    return Response(status_code=204)
