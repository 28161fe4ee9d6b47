"""CompositionWorkflow histories recorded before continue-as-new existed still replay on today's code.

The JSON files were recorded with the previous code (a chain with a skipped failure and a ``$ref``, a plan with
a failed branch, a chain cancelled while a step ran). A change to the commands that code issued would make the
replayer raise a nondeterminism error, as it would for a composition still running when workers are upgraded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from ains.workflows.composition import CompositionWorkflow

HISTORIES = {p.stem: p.read_text() for p in sorted((Path(__file__).parent / "histories").glob("composition_*.json"))}


@pytest.mark.parametrize("name", list(HISTORIES))
async def test_recorded_composition_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"{name}-wf", HISTORIES[name])
    replayer = Replayer(workflows=[CompositionWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
