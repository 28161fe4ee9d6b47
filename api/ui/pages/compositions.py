"""Chains and plans: the recent ones, and one drawn as a graph of its steps with their statuses (live)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from ains.api.ui.graph import NODE_H, NODE_W, layout
from ains.api.ui.session import UiUser
from ains.api.ui.web import UiRoute, action, redirect, render, require, signed_in, state_of
from ains.core import overview
from ains.core.composition import chains as compositions
from ains.core.platform.errors import NotFound
from ains.models.keys import Scope

router = APIRouter(route_class=UiRoute)
User = Annotated[UiUser, Depends(signed_in)]
KINDS = ("chain", "plan")


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise NotFound(f"no such composition kind {kind!r} (chain or plan)")
    return kind


@router.get("/compositions")
async def compositions_page(request: Request, user: User) -> Response:
    require(user, Scope.TASKS_READ)
    async with state_of(request).db.session() as session:
        rows = await overview.recent_compositions(session, user.visible_client)
    return render(request, "compositions.html", user, rows=rows)


@router.get("/compositions/{kind}/{composition_id}")
async def composition_page(kind: str, composition_id: str, request: Request, user: User) -> Response:
    require(user, Scope.TASKS_READ)
    state = state_of(request)
    async with state.db.session() as session:
        view = await compositions.get_composition(
            session, state.settings, _kind(kind), composition_id, user.visible_client
        )
    return render(
        request,
        "composition.html",
        user,
        view=view,
        graph=layout(view.steps),
        node_w=NODE_W,
        node_h=NODE_H,
        final=view.status in compositions.FINAL,
    )


@router.post("/compositions/{kind}/{composition_id}/cancel")
async def cancel(kind: str, composition_id: str, request: Request, user: User) -> Response:
    await action(request, user)
    require(user, Scope.TASKS_WRITE)
    state = state_of(request)
    await compositions.cancel_composition(
        state.db, await state.temporal(), state.settings, _kind(kind), composition_id, user.visible_client
    )
    return redirect(f"/ui/compositions/{kind}/{composition_id}", "cancellation requested")
