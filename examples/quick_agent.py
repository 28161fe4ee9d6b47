"""A quick agent: text statistics and a keyword search, answered within the call.

    AINS_URL=http://127.0.0.1:8000 AINS_API_KEY=ains_... AINS_AGENT_SIGNING_SECRET=... \\
        python -m ains.examples.quick_agent --port 9100

then ``ains task submit text_stats --input '{"text": "one two three"}' --wait``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ains.sdk.agent import Agent, AgentError, CallContext
from ains.sdk.config import agent_signing_secret


class TextInput(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)


class FindInput(TextInput):
    word: str = Field(min_length=1)


def build(signing_secret: str | None = None, agent_id: str = "example-quick") -> Agent:
    agent = Agent(agent_id, signing_secret=agent_signing_secret(signing_secret), display_name="Quick example")

    @agent.capability("text_stats", version="1.2")
    def text_stats(data: TextInput) -> dict[str, int]:
        """Plain functions run in a thread; the input is validated into TextInput first."""
        words = data.text.split()
        return {"characters": len(data.text), "words": len(words), "unique_words": len({w.lower() for w in words})}

    @agent.capability("find_word", version="2.0")
    async def find_word(data: FindInput, call: CallContext) -> dict[str, object]:
        positions = [i for i, w in enumerate(data.text.split()) if w.strip(".,!?").lower() == data.word.lower()]
        if not positions:
            raise AgentError(f"{data.word!r} does not occur (task {call.task_id}, attempt {call.attempt})")
        return {"word": data.word, "positions": positions}

    return agent


if __name__ == "__main__":
    from ains.examples.run import main

    main(build(), default_port=9100)
