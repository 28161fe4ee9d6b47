"""api.task_starter: a submitted task's run is started in the background; with the starter's limit in flight a
caller first waits for one of them to end (back-pressure); closing waits for the starts in flight."""

from __future__ import annotations

from temporalio.service import RPCError

from ains.api.task_starter import TaskStarter
from ains.core.tasks.service import record_task, workflow_input
from ains.models.contract import task_workflow_id
from ains.models.tasks import TaskCreate
from tests.support.stack import Stack


async def test_a_start_beyond_the_limit_waits_for_a_turn_and_close_waits_for_the_rest(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run", max_concurrency=10)
    key, client_id = await stack.new_key()
    spec = TaskCreate(type="echo", required_capabilities=[tag])
    tasks = [(await record_task(stack.db, stack.settings, client_id, spec))[0] for _ in range(3)]
    temporal = await stack.temporal()
    starter = TaskStarter(limit=2)
    first, second, third = (workflow_input(task, stack.settings) for task in tasks)

    await starter.start(temporal, first)
    await starter.start(temporal, second)
    assert starter.in_flight == 2, "both went to the background: the callers did not wait"
    await starter.start(temporal, third)  # the limit is reached: returns once one of the first two has ended
    assert starter.in_flight <= 2
    started = []
    for params in (first, second):
        try:
            await temporal.get_workflow_handle(task_workflow_id(params.task_id)).describe()
            started.append(params.task_id)
        except RPCError:
            pass
    assert started, "the third start waited for a turn: one of the first two had been started"

    await starter.close()
    assert starter.in_flight == 0
    for task in tasks:
        done = await stack.wait_for(key, task.id)
        assert done["status"] == "succeeded", done
