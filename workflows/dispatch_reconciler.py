"""DispatchReconcileWorkflow: one round of the dispatch reconciler, started by a Temporal Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ains.activities.dispatch import DispatchActivities
    from ains.models.contract import RECONCILE_WORKFLOW_NAME
    from ains.models.workflow_io import ReconcileInput, ReconcileResult

RECONCILE_TIMEOUT = timedelta(minutes=2)
RECONCILE_RETRY = RetryPolicy(maximum_attempts=2)


@workflow.defn(name=RECONCILE_WORKFLOW_NAME)
class DispatchReconcileWorkflow:
    @workflow.run
    async def run(self, params: ReconcileInput) -> ReconcileResult:
        result: ReconcileResult = await workflow.execute_activity_method(
            DispatchActivities.reconcile_dispatch,
            params,
            start_to_close_timeout=RECONCILE_TIMEOUT,
            retry_policy=RECONCILE_RETRY,
        )
        workflow.set_current_details(
            f"re-sent {result.resent} assignment(s), released {result.released} slot(s), "
            f"handed over {result.handed_over} idle slot(s), started {result.expired} expired queued task(s)"
        )
        return result
