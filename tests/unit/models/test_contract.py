"""models.contract: the names every process uses to reach a workflow are the ones the workflows register under."""

from __future__ import annotations

from temporalio import workflow

from ains.models import contract
from ains.workflows.batch import BatchWorkflow
from ains.workflows.catalog import ALL_WORKFLOWS
from ains.workflows.task_workflow import TaskWorkflow

WORKFLOW_NAMES = {value for key, value in vars(contract).items() if key.endswith("_WORKFLOW_NAME")}


def _definition(cls: type) -> workflow._Definition:
    return workflow._Definition.must_from_class(cls)


def test_every_workflow_registers_under_a_contract_name_and_every_name_has_a_workflow() -> None:
    registered = {_definition(cls).name for cls in ALL_WORKFLOWS}
    assert registered == WORKFLOW_NAMES


def test_the_signals_starters_send_are_the_ones_the_workflows_handle() -> None:
    task_signals = set(_definition(TaskWorkflow).signals)
    assert {
        contract.SLOT_ASSIGNED_SIGNAL,
        contract.DEPENDENCY_FINISHED_SIGNAL,
        contract.SLOT_FREED_SIGNAL,
    } <= task_signals
    assert contract.BATCH_RECORDED_SIGNAL in _definition(BatchWorkflow).signals


def test_every_queue_name_is_distinct_and_known_by_its_short_name() -> None:
    assert len(set(contract.ALL_QUEUES.values())) == len(contract.ALL_QUEUES)
    assert contract.ALL_QUEUES["orchestration"] == contract.ORCHESTRATION_QUEUE
