"""The typed AINS client, async (``AsyncClient``) and sync (``Client``), one namespace per API resource.

    from ains.sdk import Client

    with Client() as ains:                      # AINS_URL / AINS_API_KEY / profile, or Client(url, api_key)
        task = ains.tasks.submit({"type": "summarize", "input": {"text": "AINS works. It is durable."}})
        done = ains.tasks.wait(task.id, timeout=60)
        print(done.status, done.result)

Requests and answers are the wire models of ``models/`` (plain mappings are accepted and validated first).
Errors raise ``sdk.errors.ApiError`` subclasses carrying the API's code and details. 429 and 503 answers are
retried (``Retry-After`` honoured); every submission carries an idempotency key generated once, so a retried
submit never makes two tasks. ``iter_*`` methods page through lists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from ains.models.agents import AgentCreate, AgentDetailView, AgentStatus, AgentUpdate, AgentView
from ains.models.audit import AuditEntryView
from ains.models.chains import ChainCreate
from ains.models.common import Page
from ains.models.feedback import FeedbackCreate, FeedbackView
from ains.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView
from ains.models.llm import PlanGenerateRequest, PlanGenerateResponse
from ains.models.plans import PlanCreate, PlanView
from ains.models.providers import ProvidersView
from ains.models.schedules import ScheduleBackfill, ScheduleCreate, ScheduleTrigger, ScheduleUpdate, ScheduleView
from ains.models.tasks import TaskAccepted, TaskBatchAccepted, TaskBatchCreate, TaskCreate, TaskRoutingView, TaskView
from ains.models.templates import TemplateCreate, TemplateView
from ains.models.trust_views import AgentTrustView, Leaderboard, TrustOverride, TrustRecordView
from ains.models.usage import BudgetSet, BudgetView, UsageReport
from ains.models.webhooks import DeliveryView, WebhookCreate, WebhookCreated, WebhookView
from ains.sdk import calls
from ains.sdk.calls import Call, coerce
from ains.sdk.config import ClientConfig, resolve_config
from ains.sdk.errors import WaitTimeout
from ains.sdk.transport import AsyncTransport, RetryPolicy, SyncTransport

Kind = Literal["chain", "plan"]
COMPOSITION_FINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_SECONDS = 0.5
DEFAULT_TIMEOUT_SECONDS = 30.0


def _views(events: Iterator[Any]) -> Iterator[TaskView]:
    for event in events:
        if event.event == "status":
            yield TaskView.model_validate_json(event.data)


def _state(last: TaskView | None) -> str:
    if last is None:
        return ""
    reason = f": {last.status_reason}" if last.status_reason else ""
    return f" (last seen {last.status.value}{reason})"


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _config(url: str | None, api_key: str | None, profile: str | None, config_file: Path | None) -> ClientConfig:
    return resolve_config(url=url, api_key=api_key, profile=profile, config_file=config_file)


# ===================================================================================================== async


class _AsyncResource:
    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport


class AsyncTasks(_AsyncResource):
    async def submit(self, spec: TaskCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> TaskAccepted:
        return await self._t.run(calls.submit_task(coerce(TaskCreate, spec), idempotency_key))

    async def get(self, task_id: str) -> TaskView:
        return await self._t.run(calls.get_task(task_id))

    async def list(self, **filters: Any) -> Page[TaskView]:
        """One page; filters: status, type, agent_id, limit, cursor."""
        return await self._t.run(calls.list_tasks(**filters))

    def iter(self, **filters: Any) -> AsyncIterator[TaskView]:
        """Every matching task, newest first, page after page."""
        return self._t.pages(lambda cursor: calls.list_tasks(**filters, cursor=cursor))

    async def cancel(self, task_id: str) -> TaskView:
        return await self._t.run(calls.cancel_task(task_id))

    async def feedback(
        self, task_id: str, score: float, *, label: str | None = None, comment: str | None = None
    ) -> FeedbackView:
        """Rate a succeeded task's result (0-1); sending again replaces the earlier score."""
        spec = FeedbackCreate(score=score, label=label, comment=comment)
        return await self._t.run(calls.give_feedback(task_id, spec))

    async def routing(self, task_id: str) -> TaskRoutingView:
        return await self._t.run(calls.task_routing(task_id))

    async def events(self, task_id: str, *, timeout: float | None = None) -> AsyncIterator[TaskView]:
        """The task now, then at every change (status, reason, agent, attempt) until it is final, from the
        API's event stream (``GET /v1/tasks/{id}/events``); ends early after ``timeout`` seconds."""
        params = calls.query(timeout_seconds=timeout)
        async for event in self._t.events(calls.task_events_path(task_id), params):
            if event.event == "status":
                yield TaskView.model_validate_json(event.data)

    async def wait(self, task_id: str, *, timeout: float | None = None) -> TaskView:
        """The task once final. Raises ``WaitTimeout`` (with the last state seen) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: TaskView | None = None
        while True:
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"task {task_id} not finished after {timeout}s{_state(last)}", last)
            async for view in self.events(task_id, timeout=remaining):
                last = view
                if view.status.is_final:
                    return view
            await asyncio.sleep(0.1)  # the stream ended early (timeout or a dropped connection): look again

    async def run(self, spec: TaskCreate | Mapping[str, Any], *, timeout: float | None = None) -> TaskView:
        """Submit and wait for the final state."""
        accepted = await self.submit(spec)
        return await self.wait(accepted.id, timeout=timeout)


class AsyncBatches(_AsyncResource):
    async def submit(
        self, batch: TaskBatchCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> TaskBatchAccepted:
        return await self._t.run(calls.submit_batch(coerce(TaskBatchCreate, batch), idempotency_key))


class _AsyncCompositions(_AsyncResource):
    kind: Kind

    async def get(self, composition_id: str) -> PlanView:
        return await self._t.run(calls.get_composition(self.kind, composition_id))

    async def cancel(self, composition_id: str) -> PlanView:
        return await self._t.run(calls.cancel_composition(self.kind, composition_id))

    async def watch(self, composition_id: str, *, timeout: float | None = None) -> AsyncIterator[PlanView]:
        """The composition now, then each time a step or the whole changes, until it is final."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: PlanView | None = None
        while True:
            view = await self.get(composition_id)
            if last is None or view.model_dump() != last.model_dump():
                last = view
                yield view
            if view.status in COMPOSITION_FINAL:
                return
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"{self.kind} {composition_id} not finished after {timeout}s", last)
            await asyncio.sleep(POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining))

    async def wait(self, composition_id: str, *, timeout: float | None = None) -> PlanView:
        last: PlanView | None = None
        async for view in self.watch(composition_id, timeout=timeout):
            last = view
        assert last is not None
        return last


class AsyncChains(_AsyncCompositions):
    kind: Kind = "chain"

    async def create(self, chain: ChainCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> PlanView:
        return await self._t.run(calls.create_composition("chain", coerce(ChainCreate, chain), idempotency_key))


class AsyncPlans(_AsyncCompositions):
    kind: Kind = "plan"

    async def create(self, plan: PlanCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> PlanView:
        return await self._t.run(calls.create_composition("plan", coerce(PlanCreate, plan), idempotency_key))

    async def generate(self, request: PlanGenerateRequest | Mapping[str, Any]) -> PlanGenerateResponse:
        return await self._t.run(calls.generate_plan(coerce(PlanGenerateRequest, request)))


class AsyncTemplates(_AsyncResource):
    async def create(self, spec: TemplateCreate | Mapping[str, Any]) -> TemplateView:
        return await self._t.run(calls.create_template(coerce(TemplateCreate, spec)))

    async def get(self, template_id: str) -> TemplateView:
        return await self._t.run(calls.get_template(template_id))

    async def list(self) -> list[TemplateView]:
        return await self._t.run(calls.list_templates())

    async def delete(self, template_id: str) -> None:
        await self._t.run(calls.delete_template(template_id))


class AsyncSchedules(_AsyncResource):
    async def create(self, spec: ScheduleCreate | Mapping[str, Any]) -> ScheduleView:
        return await self._t.run(calls.create_schedule(coerce(ScheduleCreate, spec)))

    async def get(self, schedule_id: str) -> ScheduleView:
        return await self._t.run(calls.get_schedule(schedule_id))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ScheduleView]:
        return await self._t.run(calls.list_schedules(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> AsyncIterator[ScheduleView]:
        return self._t.pages(lambda cursor: calls.list_schedules(limit=limit, cursor=cursor))

    async def update(self, schedule_id: str, change: ScheduleUpdate | Mapping[str, Any]) -> ScheduleView:
        return await self._t.run(calls.update_schedule(schedule_id, coerce(ScheduleUpdate, change)))

    async def delete(self, schedule_id: str) -> None:
        await self._t.run(calls.delete_schedule(schedule_id))

    async def pause(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return await self._t.run(calls.pause_schedule(schedule_id, note))

    async def resume(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return await self._t.run(calls.resume_schedule(schedule_id, note))

    async def trigger(self, schedule_id: str, trigger: ScheduleTrigger | None = None) -> ScheduleView:
        return await self._t.run(calls.trigger_schedule(schedule_id, trigger))

    async def backfill(self, schedule_id: str, backfill: ScheduleBackfill | Mapping[str, Any]) -> ScheduleView:
        return await self._t.run(calls.backfill_schedule(schedule_id, coerce(ScheduleBackfill, backfill)))


class AsyncAgents(_AsyncResource):
    async def register(self, spec: AgentCreate | Mapping[str, Any]) -> AgentView:
        return await self._t.run(calls.register_agent(coerce(AgentCreate, spec)))

    async def get(self, agent_id: str) -> AgentDetailView:
        return await self._t.run(calls.get_agent(agent_id))

    async def list(self, **filters: Any) -> Page[AgentView]:
        """One page; filters: tag (list), status, limit, cursor."""
        return await self._t.run(calls.list_agents(**filters))

    def iter(self, **filters: Any) -> AsyncIterator[AgentView]:
        return self._t.pages(lambda cursor: calls.list_agents(**filters, cursor=cursor))

    async def update(self, agent_id: str, change: AgentUpdate | Mapping[str, Any]) -> AgentView:
        return await self._t.run(calls.update_agent(agent_id, coerce(AgentUpdate, change)))

    async def deregister(self, agent_id: str) -> None:
        await self._t.run(calls.deregister_agent(agent_id))

    async def heartbeat(self, agent_id: str) -> AgentView:
        return await self._t.run(calls.heartbeat(agent_id))

    async def set_status(self, agent_id: str, status: AgentStatus) -> AgentView:
        return await self.update(agent_id, AgentUpdate(status=status))


class AsyncTrust(_AsyncResource):
    async def leaderboard(self, **filters: Any) -> Leaderboard:
        """filters: limit, tier, tag."""
        return await self._t.run(calls.leaderboard(**filters))

    async def get(self, agent_id: str, *, limit: int | None = None, cursor: str | None = None) -> AgentTrustView:
        """Score, tier, trend, per-capability trust and one page of history."""
        return await self._t.run(calls.agent_trust(agent_id, limit=limit, cursor=cursor))

    async def history(self, agent_id: str, *, limit: int | None = None) -> AsyncIterator[TrustRecordView]:
        """Every trust record of the agent, newest first."""
        cursor: str | None = None
        while True:
            view = await self.get(agent_id, limit=limit, cursor=cursor)
            for record in view.records:
                yield record
            if not view.next_cursor:
                return
            cursor = view.next_cursor

    async def override(self, agent_id: str, change: TrustOverride | Mapping[str, Any]) -> TrustRecordView:
        return await self._t.run(calls.override_trust(agent_id, coerce(TrustOverride, change)))


class AsyncKeys(_AsyncResource):
    async def create(self, spec: ApiKeyCreate | Mapping[str, Any]) -> ApiKeyCreated:
        return await self._t.run(calls.create_key(coerce(ApiKeyCreate, spec)))

    async def list(self, *, client_id: str | None = None) -> list[ApiKeyView]:
        return await self._t.run(calls.list_keys(client_id=client_id))

    async def revoke(self, key_id: str) -> ApiKeyView:
        return await self._t.run(calls.revoke_key(key_id))


class AsyncWebhooks(_AsyncResource):
    async def create(self, spec: WebhookCreate | Mapping[str, Any]) -> WebhookCreated:
        return await self._t.run(calls.create_webhook(coerce(WebhookCreate, spec)))

    async def get(self, webhook_id: str) -> WebhookView:
        return await self._t.run(calls.get_webhook(webhook_id))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[WebhookView]:
        return await self._t.run(calls.list_webhooks(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> AsyncIterator[WebhookView]:
        return self._t.pages(lambda cursor: calls.list_webhooks(limit=limit, cursor=cursor))

    async def delete(self, webhook_id: str) -> None:
        await self._t.run(calls.delete_webhook(webhook_id))

    async def deliveries(self, **filters: Any) -> Page[DeliveryView]:
        """One page; filters: status ('dead' = the dead-letter queue), webhook_id, event_type, limit, cursor."""
        return await self._t.run(calls.list_deliveries(**filters))

    def iter_deliveries(self, **filters: Any) -> AsyncIterator[DeliveryView]:
        return self._t.pages(lambda cursor: calls.list_deliveries(**filters, cursor=cursor))

    async def delivery(self, delivery_id: str) -> DeliveryView:
        return await self._t.run(calls.get_delivery(delivery_id))

    async def replay(self, delivery_id: str) -> DeliveryView:
        return await self._t.run(calls.replay_delivery(delivery_id))


class AsyncUsage(_AsyncResource):
    async def report(self, **filters: Any) -> UsageReport:
        """filters: group_by (list), client_id, agent_id, task_id, since, until."""
        return await self._t.run(calls.usage(**filters))

    async def providers(self) -> ProvidersView:
        return await self._t.run(calls.providers())

    async def set_budget(self, client_id: str, spec: BudgetSet | Mapping[str, Any]) -> BudgetView:
        return await self._t.run(calls.set_budget(client_id, coerce(BudgetSet, spec)))

    async def budget(self, client_id: str) -> BudgetView:
        return await self._t.run(calls.get_budget(client_id))

    async def delete_budget(self, client_id: str) -> None:
        await self._t.run(calls.delete_budget(client_id))


class AsyncAudit(_AsyncResource):
    async def list(self, **filters: Any) -> Page[AuditEntryView]:
        """One page (admin); filters: client_id, key_id, method, route, resource_id, status_code, since, until,
        limit, cursor."""
        return await self._t.run(calls.list_audit(**filters))

    def iter(self, **filters: Any) -> AsyncIterator[AuditEntryView]:
        return self._t.pages(lambda cursor: calls.list_audit(**filters, cursor=cursor))


class AsyncClient:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        profile: str | None = None,
        config_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = _config(url, api_key, profile, config_file)
        self.transport = AsyncTransport(self.config, retry or RetryPolicy(), timeout, http)
        self.tasks = AsyncTasks(self.transport)
        self.batches = AsyncBatches(self.transport)
        self.chains = AsyncChains(self.transport)
        self.plans = AsyncPlans(self.transport)
        self.templates = AsyncTemplates(self.transport)
        self.schedules = AsyncSchedules(self.transport)
        self.agents = AsyncAgents(self.transport)
        self.trust = AsyncTrust(self.transport)
        self.keys = AsyncKeys(self.transport)
        self.webhooks = AsyncWebhooks(self.transport)
        self.usage = AsyncUsage(self.transport)
        self.audit = AsyncAudit(self.transport)

    async def run(self, call: Call[Any]) -> Any:
        """Send any ``sdk.calls`` description (for operations without a helper)."""
        return await self.transport.run(call)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# ====================================================================================================== sync


class _Resource:
    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport


class Tasks(_Resource):
    def submit(self, spec: TaskCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> TaskAccepted:
        return self._t.run(calls.submit_task(coerce(TaskCreate, spec), idempotency_key))

    def get(self, task_id: str) -> TaskView:
        return self._t.run(calls.get_task(task_id))

    def list(self, **filters: Any) -> Page[TaskView]:
        """One page; filters: status, type, agent_id, limit, cursor."""
        return self._t.run(calls.list_tasks(**filters))

    def iter(self, **filters: Any) -> Iterator[TaskView]:
        """Every matching task, newest first, page after page."""
        return self._t.pages(lambda cursor: calls.list_tasks(**filters, cursor=cursor))

    def cancel(self, task_id: str) -> TaskView:
        return self._t.run(calls.cancel_task(task_id))

    def feedback(
        self, task_id: str, score: float, *, label: str | None = None, comment: str | None = None
    ) -> FeedbackView:
        """Rate a succeeded task's result (0-1); sending again replaces the earlier score."""
        return self._t.run(calls.give_feedback(task_id, FeedbackCreate(score=score, label=label, comment=comment)))

    def routing(self, task_id: str) -> TaskRoutingView:
        return self._t.run(calls.task_routing(task_id))

    def events(self, task_id: str, *, timeout: float | None = None) -> Iterator[TaskView]:
        """The task now, then at every change (status, reason, agent, attempt) until it is final, from the
        API's event stream (``GET /v1/tasks/{id}/events``); ends early after ``timeout`` seconds."""
        params = calls.query(timeout_seconds=timeout)
        return _views(self._t.events(calls.task_events_path(task_id), params))

    def wait(self, task_id: str, *, timeout: float | None = None) -> TaskView:
        """The task once final. Raises ``WaitTimeout`` (with the last state seen) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: TaskView | None = None
        while True:
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"task {task_id} not finished after {timeout}s{_state(last)}", last)
            for view in self.events(task_id, timeout=remaining):
                last = view
                if view.status.is_final:
                    return view
            time.sleep(0.1)  # the stream ended early (timeout or a dropped connection): look again

    def run(self, spec: TaskCreate | Mapping[str, Any], *, timeout: float | None = None) -> TaskView:
        """Submit and wait for the final state."""
        return self.wait(self.submit(spec).id, timeout=timeout)


class Batches(_Resource):
    def submit(
        self, batch: TaskBatchCreate | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> TaskBatchAccepted:
        return self._t.run(calls.submit_batch(coerce(TaskBatchCreate, batch), idempotency_key))


class _Compositions(_Resource):
    kind: Kind

    def get(self, composition_id: str) -> PlanView:
        return self._t.run(calls.get_composition(self.kind, composition_id))

    def cancel(self, composition_id: str) -> PlanView:
        return self._t.run(calls.cancel_composition(self.kind, composition_id))

    def watch(self, composition_id: str, *, timeout: float | None = None) -> Iterator[PlanView]:
        """The composition now, then each time a step or the whole changes, until it is final."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: PlanView | None = None
        while True:
            view = self.get(composition_id)
            if last is None or view.model_dump() != last.model_dump():
                last = view
                yield view
            if view.status in COMPOSITION_FINAL:
                return
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"{self.kind} {composition_id} not finished after {timeout}s", last)
            time.sleep(POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining))

    def wait(self, composition_id: str, *, timeout: float | None = None) -> PlanView:
        last: PlanView | None = None
        for view in self.watch(composition_id, timeout=timeout):
            last = view
        assert last is not None
        return last


class Chains(_Compositions):
    kind: Kind = "chain"

    def create(self, chain: ChainCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> PlanView:
        return self._t.run(calls.create_composition("chain", coerce(ChainCreate, chain), idempotency_key))


class Plans(_Compositions):
    kind: Kind = "plan"

    def create(self, plan: PlanCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> PlanView:
        return self._t.run(calls.create_composition("plan", coerce(PlanCreate, plan), idempotency_key))

    def generate(self, request: PlanGenerateRequest | Mapping[str, Any]) -> PlanGenerateResponse:
        return self._t.run(calls.generate_plan(coerce(PlanGenerateRequest, request)))


class Templates(_Resource):
    def create(self, spec: TemplateCreate | Mapping[str, Any]) -> TemplateView:
        return self._t.run(calls.create_template(coerce(TemplateCreate, spec)))

    def get(self, template_id: str) -> TemplateView:
        return self._t.run(calls.get_template(template_id))

    def list(self) -> list[TemplateView]:
        return self._t.run(calls.list_templates())

    def delete(self, template_id: str) -> None:
        self._t.run(calls.delete_template(template_id))


class Schedules(_Resource):
    def create(self, spec: ScheduleCreate | Mapping[str, Any]) -> ScheduleView:
        return self._t.run(calls.create_schedule(coerce(ScheduleCreate, spec)))

    def get(self, schedule_id: str) -> ScheduleView:
        return self._t.run(calls.get_schedule(schedule_id))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ScheduleView]:
        return self._t.run(calls.list_schedules(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> Iterator[ScheduleView]:
        return self._t.pages(lambda cursor: calls.list_schedules(limit=limit, cursor=cursor))

    def update(self, schedule_id: str, change: ScheduleUpdate | Mapping[str, Any]) -> ScheduleView:
        return self._t.run(calls.update_schedule(schedule_id, coerce(ScheduleUpdate, change)))

    def delete(self, schedule_id: str) -> None:
        self._t.run(calls.delete_schedule(schedule_id))

    def pause(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return self._t.run(calls.pause_schedule(schedule_id, note))

    def resume(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return self._t.run(calls.resume_schedule(schedule_id, note))

    def trigger(self, schedule_id: str, trigger: ScheduleTrigger | None = None) -> ScheduleView:
        return self._t.run(calls.trigger_schedule(schedule_id, trigger))

    def backfill(self, schedule_id: str, backfill: ScheduleBackfill | Mapping[str, Any]) -> ScheduleView:
        return self._t.run(calls.backfill_schedule(schedule_id, coerce(ScheduleBackfill, backfill)))


class Agents(_Resource):
    def register(self, spec: AgentCreate | Mapping[str, Any]) -> AgentView:
        return self._t.run(calls.register_agent(coerce(AgentCreate, spec)))

    def get(self, agent_id: str) -> AgentDetailView:
        return self._t.run(calls.get_agent(agent_id))

    def list(self, **filters: Any) -> Page[AgentView]:
        """One page; filters: tag (list), status, limit, cursor."""
        return self._t.run(calls.list_agents(**filters))

    def iter(self, **filters: Any) -> Iterator[AgentView]:
        return self._t.pages(lambda cursor: calls.list_agents(**filters, cursor=cursor))

    def update(self, agent_id: str, change: AgentUpdate | Mapping[str, Any]) -> AgentView:
        return self._t.run(calls.update_agent(agent_id, coerce(AgentUpdate, change)))

    def deregister(self, agent_id: str) -> None:
        self._t.run(calls.deregister_agent(agent_id))

    def heartbeat(self, agent_id: str) -> AgentView:
        return self._t.run(calls.heartbeat(agent_id))

    def set_status(self, agent_id: str, status: AgentStatus) -> AgentView:
        return self.update(agent_id, AgentUpdate(status=status))


class Trust(_Resource):
    def leaderboard(self, **filters: Any) -> Leaderboard:
        """filters: limit, tier, tag."""
        return self._t.run(calls.leaderboard(**filters))

    def get(self, agent_id: str, *, limit: int | None = None, cursor: str | None = None) -> AgentTrustView:
        """Score, tier, trend, per-capability trust and one page of history."""
        return self._t.run(calls.agent_trust(agent_id, limit=limit, cursor=cursor))

    def history(self, agent_id: str, *, limit: int | None = None) -> Iterator[TrustRecordView]:
        """Every trust record of the agent, newest first."""
        cursor: str | None = None
        while True:
            view = self.get(agent_id, limit=limit, cursor=cursor)
            yield from view.records
            if not view.next_cursor:
                return
            cursor = view.next_cursor

    def override(self, agent_id: str, change: TrustOverride | Mapping[str, Any]) -> TrustRecordView:
        return self._t.run(calls.override_trust(agent_id, coerce(TrustOverride, change)))


class Keys(_Resource):
    def create(self, spec: ApiKeyCreate | Mapping[str, Any]) -> ApiKeyCreated:
        return self._t.run(calls.create_key(coerce(ApiKeyCreate, spec)))

    def list(self, *, client_id: str | None = None) -> list[ApiKeyView]:
        return self._t.run(calls.list_keys(client_id=client_id))

    def revoke(self, key_id: str) -> ApiKeyView:
        return self._t.run(calls.revoke_key(key_id))


class Webhooks(_Resource):
    def create(self, spec: WebhookCreate | Mapping[str, Any]) -> WebhookCreated:
        return self._t.run(calls.create_webhook(coerce(WebhookCreate, spec)))

    def get(self, webhook_id: str) -> WebhookView:
        return self._t.run(calls.get_webhook(webhook_id))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[WebhookView]:
        return self._t.run(calls.list_webhooks(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> Iterator[WebhookView]:
        return self._t.pages(lambda cursor: calls.list_webhooks(limit=limit, cursor=cursor))

    def delete(self, webhook_id: str) -> None:
        self._t.run(calls.delete_webhook(webhook_id))

    def deliveries(self, **filters: Any) -> Page[DeliveryView]:
        """One page; filters: status ('dead' = the dead-letter queue), webhook_id, event_type, limit, cursor."""
        return self._t.run(calls.list_deliveries(**filters))

    def iter_deliveries(self, **filters: Any) -> Iterator[DeliveryView]:
        return self._t.pages(lambda cursor: calls.list_deliveries(**filters, cursor=cursor))

    def delivery(self, delivery_id: str) -> DeliveryView:
        return self._t.run(calls.get_delivery(delivery_id))

    def replay(self, delivery_id: str) -> DeliveryView:
        return self._t.run(calls.replay_delivery(delivery_id))


class Usage(_Resource):
    def report(self, **filters: Any) -> UsageReport:
        """filters: group_by (list), client_id, agent_id, task_id, since, until."""
        return self._t.run(calls.usage(**filters))

    def providers(self) -> ProvidersView:
        return self._t.run(calls.providers())

    def set_budget(self, client_id: str, spec: BudgetSet | Mapping[str, Any]) -> BudgetView:
        return self._t.run(calls.set_budget(client_id, coerce(BudgetSet, spec)))

    def budget(self, client_id: str) -> BudgetView:
        return self._t.run(calls.get_budget(client_id))

    def delete_budget(self, client_id: str) -> None:
        self._t.run(calls.delete_budget(client_id))


class Audit(_Resource):
    def list(self, **filters: Any) -> Page[AuditEntryView]:
        """One page (admin); filters: client_id, key_id, method, route, resource_id, status_code, since, until,
        limit, cursor."""
        return self._t.run(calls.list_audit(**filters))

    def iter(self, **filters: Any) -> Iterator[AuditEntryView]:
        return self._t.pages(lambda cursor: calls.list_audit(**filters, cursor=cursor))


class Client:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        profile: str | None = None,
        config_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.config = _config(url, api_key, profile, config_file)
        self.transport = SyncTransport(self.config, retry or RetryPolicy(), timeout, http)
        self.tasks = Tasks(self.transport)
        self.batches = Batches(self.transport)
        self.chains = Chains(self.transport)
        self.plans = Plans(self.transport)
        self.templates = Templates(self.transport)
        self.schedules = Schedules(self.transport)
        self.agents = Agents(self.transport)
        self.trust = Trust(self.transport)
        self.keys = Keys(self.transport)
        self.webhooks = Webhooks(self.transport)
        self.usage = Usage(self.transport)
        self.audit = Audit(self.transport)

    def run(self, call: Call[Any]) -> Any:
        """Send any ``sdk.calls`` description (for operations without a helper)."""
        return self.transport.run(call)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
