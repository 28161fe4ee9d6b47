"""Shared fixtures: one real Temporal dev server per session, the demo agent, and a full stack per backend."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from ains.models.search_attributes import ALL_KEYS
from ains.workers.demo_agent import create_demo_agent
from ains.workers.temporal_dev import find_binary
from tests.support.databases import BACKENDS, REDIS_ENV, backends, fresh_database
from tests.support.fake_llm import FakeLLMServer, running_fake_llm
from tests.support.servers import RunningServer, serve
from tests.support.stack import SIGNING_SECRET, Stack, stack_settings, start_stack

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``) all tests of one backend run in one worker process, so each
    process builds only its own stack; the two backends' tests then run side by side."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        backend = next((p for p in params if isinstance(p, str) and p in BACKENDS), None)
        if backend is not None:
            item.add_marker(pytest.mark.xdist_group(backend))


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    namespaces: list[str] = []
    for backend in backends():
        namespaces += ["--namespace", f"ains-{backend}"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(ALL_KEYS),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "matching.priorityLevels=10",
            "--dynamic-config-value",
            "matching.enableFairness=true",
            *namespaces,
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def demo_agent() -> AsyncIterator[RunningServer]:
    server = await serve(create_demo_agent(SIGNING_SECRET))
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    """A local OpenAI-compatible server; the stacks' providers file points its model groups at it."""
    async with running_fake_llm() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get(REDIS_ENV, "")


@pytest.fixture(scope="session", params=backends())
async def stack(
    request: pytest.FixtureRequest,
    temporal_env: WorkflowEnvironment,
    demo_agent: RunningServer,
    redis_url: str,
    fake_llm: FakeLLMServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    backend: str = request.param
    address = temporal_env.client.service_client.config.target_host
    async with fresh_database(backend, tmp_path_factory.mktemp(backend)) as url:
        settings = stack_settings(url, address, f"ains-{backend}", redis_url)
        settings = settings.model_copy(update={"providers_file": fake_llm.providers_file})
        running = await start_stack(backend, settings, demo_agent.url)
        try:
            yield running
        finally:
            await running.close()
