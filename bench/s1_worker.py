"""S1: the bare Temporal baseline. One workflow, one no-op regular activity, default SDK settings.

Run as its own process (``python -m bench.s1_worker ADDRESS``) so its CPU and memory are measured apart.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

TASK_QUEUE = "bench-s1"
NAMESPACE = "default"


@activity.defn(name="noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(noop, value, start_to_close_timeout=timedelta(seconds=30))


async def main(address: str) -> None:
    client = await Client.connect(address, namespace=NAMESPACE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[BareWorkflow], activities=[noop]):
        print("s1 worker polling", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
