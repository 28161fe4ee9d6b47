"""Route an attempt and call its agent inline in one local activity (TaskWorkflow runs from ROUTED_CALLS on)."""

from __future__ import annotations

from temporalio import activity

from activities.agent_calls import AgentCallActivities
from activities.registry import RegistryActivities
from models.workflow_io import RouteAndCall, RoutedCall, RouteOutcome, calls_inline


class RoutedCallActivities:
    def __init__(self, registry: RegistryActivities, calls: AgentCallActivities) -> None:
        self._registry = registry
        self._calls = calls

    @activity.defn(name="route_and_call")
    async def route_and_call(self, request: RouteAndCall) -> RoutedCall:
        """Route (as route_task) and, when the chosen agent is called inline, call it and record the attempt
        (as call_agent): one local activity, so one round through the worker, where two were needed. Any other
        decision comes back uncalled: the workflow waits for a hand-over or calls through the queue."""
        decision = await self._registry.route_task(request.route)
        if decision.outcome is not RouteOutcome.ASSIGNED or not calls_inline(
            decision.agent_kind, decision.agent_avg_response_ms, request.policy
        ):
            return RoutedCall(decision=decision)
        return RoutedCall(decision=decision, result=await self._calls.call_agent(request.call(decision)))
