"""A long-running agent with progress: it accepts each call at once (HTTP 202), works in steps, reports
progress as it goes and completes the task later through the API, so no HTTP connection stays open and the
task's workflow waits durably in Temporal meanwhile. Cancelling the task stops the work.

    AINS_URL=http://127.0.0.1:8000 AINS_API_KEY=ains_... AINS_AGENT_SIGNING_SECRET=... \\
        python -m ains.examples.progress_agent --port 9101

then ``ains task submit slow_report --input '{"sections": ["a", "b", "c"], "seconds_per_section": 2}' --wait``.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from ains.sdk.agent import Agent, CallContext
from ains.sdk.config import agent_signing_secret


class ReportInput(BaseModel):
    sections: list[str] = Field(min_length=1, max_length=100)
    seconds_per_section: float = Field(default=1.0, ge=0, le=3600)


def build(signing_secret: str | None = None, agent_id: str = "example-progress") -> Agent:
    agent = Agent(agent_id, signing_secret=agent_signing_secret(signing_secret), display_name="Progress example")

    @agent.capability("slow_report", version="1.0", long_running=True)
    async def slow_report(data: ReportInput, call: CallContext) -> dict[str, object]:
        written: list[str] = []
        for number, section in enumerate(data.sections, start=1):
            await asyncio.sleep(data.seconds_per_section)
            written.append(f"{number}. {section.upper()}")
            await call.progress({"done": number, "of": len(data.sections), "section": section})
        return {"report": written}

    return agent


if __name__ == "__main__":
    from ains.examples.run import main

    main(build(), default_port=9101)
