"""WebhookDeliveryWorkflow: deliver one event to one receiver, retrying with exponential backoff and jitter
for the retry period, recording every attempt; then dead-letter it. One workflow per delivery (and replay)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ains.activities.webhooks import WebhookActivities
    from ains.models.contract import WEBHOOK_WORKFLOW_NAME
    from ains.models.webhooks import (
        AttemptRequest,
        AttemptResult,
        DeliveryFinish,
        DeliveryInput,
        DeliveryPolicy,
        DeliveryResult,
        DeliveryStatus,
    )

# The HTTP timeout is enforced inside the activity; this margin covers recording the attempt.
ATTEMPT_MARGIN = timedelta(seconds=15)
# Retries only cover a lost worker or DB hiccup; receiver failures come back as results.
ATTEMPT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=5
)
FINISH_TIMEOUT = timedelta(seconds=15)
FINISH_SCHEDULE_TO_CLOSE = timedelta(hours=1)
FINISH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30))


def backoff(policy: DeliveryPolicy, retry: int, jitter: float) -> timedelta:
    """Delay before retry number ``retry`` (1-based): exponential, capped, stretched by up to jitter_ratio."""
    base = min(policy.initial_backoff_seconds * (2 ** (retry - 1)), policy.max_backoff_seconds)
    return timedelta(seconds=base * (1 + policy.jitter_ratio * jitter))


@workflow.defn(name=WEBHOOK_WORKFLOW_NAME)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, params: DeliveryInput) -> DeliveryResult:
        policy = params.policy
        started = workflow.now()
        period = timedelta(seconds=policy.retry_period_seconds)
        attempt = params.first_attempt
        retry = 0
        while True:
            result = await self._attempt(params, attempt)
            if result.delivered:
                return DeliveryResult(delivery_id=params.delivery_id, status=DeliveryStatus.SUCCEEDED, attempts=attempt)
            if result.permanent:
                break
            retry += 1
            delay = backoff(policy, retry, workflow.random().random())
            if workflow.now() - started + delay > period:
                break
            workflow.set_current_details(
                f"attempt {attempt} failed ({result.error}); retrying in {delay.total_seconds():.1f}s"
            )
            await workflow.sleep(delay)
            attempt += 1
        await workflow.execute_activity_method(
            WebhookActivities.finish_delivery,
            DeliveryFinish(
                delivery_id=params.delivery_id,
                status=DeliveryStatus.DEAD,
                error=f"gave up after attempt {attempt}: {result.error}",
            ),
            start_to_close_timeout=FINISH_TIMEOUT,
            schedule_to_close_timeout=FINISH_SCHEDULE_TO_CLOSE,
            retry_policy=FINISH_RETRY,
        )
        return DeliveryResult(delivery_id=params.delivery_id, status=DeliveryStatus.DEAD, attempts=attempt)

    async def _attempt(self, params: DeliveryInput, attempt: int) -> AttemptResult:
        timeout = params.policy.request_timeout_seconds
        try:
            return await workflow.execute_activity_method(
                WebhookActivities.attempt_delivery,
                AttemptRequest(delivery_id=params.delivery_id, attempt=attempt, timeout_seconds=timeout),
                start_to_close_timeout=timedelta(seconds=timeout) + ATTEMPT_MARGIN,
                retry_policy=ATTEMPT_RETRY,
                summary=f"delivery attempt {attempt}",
            )
        except ActivityError as err:
            return AttemptResult(delivered=False, error=f"delivery attempt could not run: {err.cause or err}")
