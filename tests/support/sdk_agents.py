"""Serving an SDK agent (``sdk.agent.Agent``) on a real 127.0.0.1 socket for the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ains.sdk import AsyncClient
from ains.sdk.agent import Agent
from ains.sdk.errors import NotFound
from tests.support.servers import RunningServer, bound_socket, serve
from tests.support.stack import Stack


@dataclass
class ServedAgent:
    agent: Agent
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url


@asynccontextmanager
async def served_agent(stack: Stack, agent: Agent) -> AsyncIterator[ServedAgent]:
    """The agent registers itself with an agents:write key at startup and heartbeats; deregistered after."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    key, _ = await stack.new_key()
    app = agent.app(api_url=stack.api_url, api_key=key, endpoint_url=f"{url}/run", health_url=f"{url}/health")
    server = await serve(app, sock)
    try:
        yield ServedAgent(agent, server)
    finally:
        await server.stop()
        async with AsyncClient(stack.api_url, key) as client:
            try:
                await client.agents.deregister(agent.id)
            except NotFound:
                pass
