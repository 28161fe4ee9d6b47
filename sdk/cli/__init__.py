"""The client commands of ``ains`` (Typer + Rich): task, batch, chain, plan, agents, trust, schedules, webhooks.

Connection: ``--url``/``--api-key``/``--profile`` before the command (``ains --url ... task ls``), else
``AINS_URL``/``AINS_API_KEY``/``AINS_PROFILE``, else the profile file (see ``sdk.config``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from ains.sdk.cli.common import Connection
from ains.sdk.cli.compositions import chain_app, plan_app
from ains.sdk.cli.operations import schedules_app, webhooks_app
from ains.sdk.cli.registry import agents_app, trust_app
from ains.sdk.cli.tasks import batch_app, task_app

GROUPS = {
    "task": task_app,
    "batch": batch_app,
    "chain": chain_app,
    "plan": plan_app,
    "agents": agents_app,
    "trust": trust_app,
    "schedules": schedules_app,
    "webhooks": webhooks_app,
}


def connection_callback(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="AINS API URL [env: AINS_URL]", show_default=False)] = None,
    api_key: Annotated[str | None, typer.Option(help="API key [env: AINS_API_KEY]", show_default=False)] = None,
    profile: Annotated[
        str | None, typer.Option(help="profile in ~/.config/ains/config.toml [env: AINS_PROFILE]")
    ] = None,
) -> None:
    ctx.obj = Connection(url=url, api_key=api_key, profile=profile)


def add_client_commands(app: typer.Typer) -> None:
    for name, group in GROUPS.items():
        app.add_typer(group, name=name)
