"""A tiny OpenAI-compatible chat-completions server for tests: the only fake, at the true external edge.

Behaviour is set per requested model name, so several "providers" can share one server: a status code to
answer with, a delay, canned content and the usage numbers to report. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.servers import RunningServer, serve


@dataclass
class Behaviour:
    status: int = 200
    delay_seconds: float = 0.0
    content: str = "ok"
    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass
class FakeLLM:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def set(self, model: str, **changes: Any) -> Behaviour:
        behaviour = Behaviour(**changes)
        self.behaviours[model] = behaviour
        return behaviour

    def calls_for(self, model: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["model"] == model]

    def create_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> JSONResponse:
            body: dict[str, Any] = await request.json()
            model = str(body.get("model", ""))
            self.calls.append(
                {
                    "model": model,
                    "messages": body.get("messages"),
                    "authorization": request.headers.get("authorization"),
                    "at": time.monotonic(),
                }
            )
            behaviour = self.behaviours.get(model, Behaviour())
            if behaviour.delay_seconds:
                await asyncio.sleep(behaviour.delay_seconds)
            if behaviour.status >= 300:
                return JSONResponse(
                    {"error": {"message": f"fake failure {behaviour.status}", "type": "server_error"}},
                    status_code=behaviour.status,
                )
            usage = {
                "prompt_tokens": behaviour.prompt_tokens,
                "completion_tokens": behaviour.completion_tokens,
                "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens,
            }
            return JSONResponse(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": behaviour.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        return app


# Model groups of the test stacks' providers file; tests set each fake model's behaviour before use.
E2E_GROUP = "e2e"
FAKE_KEY_ENV = "AINS_TEST_FAKE_LLM_KEY"
PLANNER_GROUP = "planner"


def stack_providers(api_base: str) -> dict[str, Any]:
    return {
        "cooldown": {"allowed_fails": 100, "cooldown_seconds": 1},
        "model_groups": [
            {
                "name": E2E_GROUP,
                "timeout_seconds": 5,
                "max_output_tokens": 100,
                "deployments": [
                    {
                        "id": "e2e-primary",
                        "provider": "fake-a",
                        "model": "openai/e2e-primary",
                        "api_base": api_base,
                        "api_key_env": FAKE_KEY_ENV,
                        "priority": 1,
                        "input_cost_per_million": 1000,
                        "output_cost_per_million": 2000,
                    },
                    {
                        "id": "e2e-secondary",
                        "provider": "fake-b",
                        "model": "openai/e2e-secondary",
                        "api_base": api_base,
                        "priority": 2,
                        "input_cost_per_million": 1000,
                        "output_cost_per_million": 2000,
                    },
                ],
            },
            {
                "name": PLANNER_GROUP,
                "timeout_seconds": 5,
                "max_output_tokens": 500,
                "deployments": [
                    {
                        "id": "planner-1",
                        "provider": "fake-a",
                        "model": "openai/planner",
                        "api_base": api_base,
                        "input_cost_per_million": 1,
                        "output_cost_per_million": 1,
                    }
                ],
            },
        ],
    }


@dataclass
class FakeLLMServer:
    fake: FakeLLM
    server: RunningServer
    providers_file: Path

    @property
    def api_base(self) -> str:
        return f"{self.server.url}/v1"


@asynccontextmanager
async def running_fake_llm() -> AsyncIterator[FakeLLMServer]:
    fake = FakeLLM()
    server = await serve(fake.create_app())
    # The e2e group's key comes from the environment, as in production; tests check it never leaks.
    os.environ[FAKE_KEY_ENV] = f"sk-test-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "providers.yaml"
        path.write_text(yaml.safe_dump(stack_providers(f"{server.url}/v1")))
        try:
            yield FakeLLMServer(fake, server, path)
        finally:
            await server.stop()
