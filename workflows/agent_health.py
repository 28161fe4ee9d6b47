"""AgentHealthWorkflow: one round of the agent health check, started by a Temporal Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ains.activities.health import HealthActivities
    from ains.models.contract import AGENTS_QUEUE, HEALTH_WORKFLOW_NAME
    from ains.models.health import HealthCheckInput, HealthCheckResult

HEALTH_CHECK_TIMEOUT = timedelta(minutes=2)
HEALTH_CHECK_RETRY = RetryPolicy(maximum_attempts=2)


@workflow.defn(name=HEALTH_WORKFLOW_NAME)
class AgentHealthWorkflow:
    @workflow.run
    async def run(self, params: HealthCheckInput) -> HealthCheckResult:
        result = await workflow.execute_activity_method(
            HealthActivities.check_agent_health,
            params,
            task_queue=AGENTS_QUEUE,
            start_to_close_timeout=HEALTH_CHECK_TIMEOUT,
            retry_policy=HEALTH_CHECK_RETRY,
        )
        changed = ", ".join(f"{c.agent_id} -> {c.status}" for c in result.changes) or "no changes"
        workflow.set_current_details(f"checked {result.checked} agent(s): {changed}")
        return result
