"""BatchWorkflow histories of earlier versions still replay (batches in flight survive a deploy)."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from ains.workflows.batch import BatchWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def test_a_batch_that_carried_every_task_input_replays_on_the_current_workflow() -> None:
    # Recorded with the version whose input held all TaskWorkflowInputs and started them as child workflows.
    history = WorkflowHistory.from_json("batch-bat_legacy", (HISTORIES / "batch_legacy_v1.json").read_text())
    replayer = Replayer(workflows=[BatchWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
