"""The operator dashboard, served by the API under /ui (see README "Dashboard")."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.ui.pages import agents, auth, compositions, operations, overview, tasks
from api.ui.web import HERE


def mount(app: FastAPI) -> None:
    for page in (auth, overview, agents, tasks, compositions, operations):
        app.include_router(page.router, prefix="/ui", include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
