"""Baseline for chains and plans: a bare Temporal workflow running N child workflows one after another,
each with one no-op activity (``bench.s1_worker.BareWorkflow``). Run as ``python -m bench.chain_worker ADDRESS``."""

from __future__ import annotations

import asyncio
import signal
import sys

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench.s1_worker import BareWorkflow, noop

TASK_QUEUE = "bench-chain"


@workflow.defn(name="BareChainWorkflow")
class BareChainWorkflow:
    @workflow.run
    async def run(self, steps: int) -> str:
        value = "start"
        for index in range(steps):
            value = await workflow.execute_child_workflow(
                BareWorkflow.run, f"{value}-{index}", id=f"{workflow.info().workflow_id}-step-{index}"
            )
        return value


async def main(address: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[BareChainWorkflow, BareWorkflow], activities=[noop]):
        print("chain worker polling", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
