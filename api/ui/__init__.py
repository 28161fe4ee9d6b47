"""The operator dashboard, served by the API under /ui (see README "Dashboard")."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from ains.api.ui.pages import agents, auth, compositions, operations, overview, tasks
from ains.api.ui.web import HERE


class _Assets(StaticFiles):
    """Scripts and styles the browser may keep but must revalidate (a 304 via ETag), instead of the API's
    ``no-store``, which would fetch 260 KB of JavaScript again on every page."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    for page in (auth, overview, agents, tasks, compositions, operations):
        app.include_router(page.router, prefix="/ui", include_in_schema=False)
    app.mount("/ui/static", _Assets(directory=HERE / "static"), name="ui-static")
