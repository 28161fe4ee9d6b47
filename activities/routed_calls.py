"""Route an attempt and call its agent inline in one local activity (TaskWorkflow runs from ROUTED_CALLS on)."""

from __future__ import annotations

import time

from temporalio import activity

from ains.activities.agent_calls import AgentCallActivities
from ains.activities.registry import RegistryActivities
from ains.models.workflow_io import INLINE_CALL_LIMIT_SECONDS, RouteAndCall, RoutedCall, RouteOutcome, calls_inline

# The call is made in the same activity only when routing left it most of the inline limit; after a slow routing
# step (a contended registry) the workflow calls the agent in a local activity of its own, with the whole limit.
ROUTING_SHARE_OF_LIMIT = 0.25


class RoutedCallActivities:
    def __init__(self, registry: RegistryActivities, calls: AgentCallActivities) -> None:
        self._registry = registry
        self._calls = calls

    @activity.defn(name="route_and_call")
    async def route_and_call(self, request: RouteAndCall) -> RoutedCall:
        """Route (as route_task) and, when the chosen agent is called inline, call it and record the attempt
        (as call_agent): one local activity, so one round through the worker, where two were needed. Any other
        decision comes back uncalled, as does an inline one after a slow routing step: the workflow waits for a
        hand-over, calls through the queue, or calls inline in a local activity of its own."""
        started = time.monotonic()
        decision = await self._registry.route_task(request.route)
        routing_seconds = time.monotonic() - started
        if (
            decision.outcome is not RouteOutcome.ASSIGNED
            or not calls_inline(decision.agent_kind, decision.agent_avg_response_ms, request.policy)
            or routing_seconds > ROUTING_SHARE_OF_LIMIT * INLINE_CALL_LIMIT_SECONDS
        ):
            return RoutedCall(decision=decision)
        return RoutedCall(decision=decision, result=await self._calls.call_agent(request.call(decision)))
