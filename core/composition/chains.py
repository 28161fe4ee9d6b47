"""Chains and plans: create (validate, record, start), read, cancel, and the per-step work of their workflow.

Both run as ``CompositionWorkflow``: a chain is a plan whose steps each depend on the previous one, with
a failure policy per step and the previous output merged into the next input. Every step is a child
``TaskWorkflow`` whose task row names the composition, so step tasks are ordinary tasks everywhere.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ains.core.access.ownership import owned
from ains.core.platform.db import Database
from ains.core.platform.errors import AinsError, Conflict, InvalidInput, Unavailable
from ains.core.platform.idempotency import create_once, idempotent_id, key_reused, request_hash
from ains.core.platform.settings import Settings
from ains.core.tasks.service import Parent, record_task, workflow_input
from ains.models.chains import ChainCreate
from ains.models.contract import COMPOSITION_WORKFLOW_NAME, ORCHESTRATION_QUEUE
from ains.models.plans import PlanCreate, PlanLimits, PlanProblem, PlanStep, PlanStepView, PlanView, validate_plan
from ains.models.references import ReferenceError_, find_references, resolve
from ains.models.tables import AgentCapability, Composition, Task, as_utc, utcnow
from ains.models.tasks import TaskCreate
from ains.models.workflow_io import (
    CompositionInput,
    CompositionState,
    CompositionStep,
    PreparedStep,
    PrepareStepRequest,
)

_STEP_TASK_NAMESPACE = uuid.UUID("2f0c8a61-3c5e-4f7e-9d55-7b1f4b0f6a23")
FINAL = {"succeeded", "failed", "cancelled"}


class PlanInvalid(InvalidInput):
    def __init__(self, problems: list[PlanProblem]) -> None:
        super().__init__("the plan cannot run: " + "; ".join(p.message for p in problems))
        self.details = [p.model_dump() for p in problems]


def _input_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def input_problems(steps: list[PlanStep], settings: Settings) -> list[PlanProblem]:
    """Steps whose own input (as written in the request) is larger than a task's input may be."""
    limit = settings.max_task_input_bytes
    return [
        PlanProblem(
            code="input_too_large",
            message=f"step {s.name!r}: input is {size} bytes; the limit is {limit} bytes (AINS_MAX_TASK_INPUT_BYTES)",
            steps=[s.name],
        )
        for s in steps
        if (size := _input_size(s.input)) > limit
    ]


def step_task_id(composition_id: str, step: str) -> str:
    """Deterministic, so a retried step preparation finds the task it already wrote."""
    return f"tsk_{uuid.uuid5(_STEP_TASK_NAMESPACE, f'{composition_id}/{step}').hex}"


def output_of(result: dict[str, Any] | None) -> Any:
    """A step's output: an agent answer ``{"output": X, ...}`` gives X; any other JSON object is the output."""
    if isinstance(result, dict) and "output" in result:
        return result["output"]
    return result


async def offered_tags(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(AgentCapability.tag).distinct())).scalars())


async def _create(
    db: Database,
    temporal: Client,
    settings: Settings,
    client_id: str,
    kind: str,
    name: str | None,
    steps: list[PlanStep],
    policies: dict[str, dict[str, Any]],
    priority: int,
    idempotency_key: str | None,
) -> PlanView:
    spec = {
        "priority": priority,
        "steps": [s.model_dump(mode="json") for s in steps],
        "policies": policies,
    }
    fingerprint = request_hash(spec, compact=False)
    key_name = f"{client_id}/{kind}/{idempotency_key}" if idempotency_key else None
    composition_id = idempotent_id(kind[:2], _STEP_TASK_NAMESPACE, key_name)
    row = Composition(
        id=composition_id,
        client_id=client_id,
        kind=kind,
        name=name,
        spec=spec,
        status="running",
        steps={s.name: {"status": "pending", "task_id": None, "reason": None} for s in steps},
        workflow_id=f"{kind}-{composition_id}",
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
    )

    async def write(session: AsyncSession) -> Composition:
        session.add(row)
        return row

    async def stored(session: AsyncSession) -> Composition | None:
        return await session.get(Composition, composition_id)

    row, _ = await create_once(
        db, write, stored, lambda existing: existing.request_hash == fingerprint, key_reused(idempotency_key, kind)
    )
    params = CompositionInput(
        composition_id=row.id,
        kind=kind,
        client_id=client_id,
        steps_per_run=settings.composition_steps_per_run,
        max_history_events=settings.composition_max_history_events,
        steps=[
            CompositionStep(
                name=s.name,
                depends_on=s.depends_on,
                on_failure=policies.get(s.name, {}).get("on_failure", "stop"),
                pass_output=policies.get(s.name, {}).get("pass_output", False),
            )
            for s in steps
        ],
    )
    try:
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

        await temporal.start_workflow(
            COMPOSITION_WORKFLOW_NAME,
            params,
            id=row.workflow_id,
            task_queue=ORCHESTRATION_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"{kind} {name or row.id}: {len(steps)} step(s)",
        )
    except WorkflowAlreadyStartedError:
        pass  # a retried request (same idempotency key) for a composition that has already finished
    except RPCError as exc:
        raise Unavailable(f"Temporal is unreachable, the {kind} was not started: {exc.message}") from exc
    async with db.session() as session:
        return await get_composition(session, settings, kind, row.id, client_id)


async def create_chain(
    db: Database, temporal: Client, settings: Settings, client_id: str, chain: ChainCreate
) -> PlanView:
    policies = {s.name: {"on_failure": s.on_failure.value, "pass_output": s.pass_output} for s in chain.steps}
    steps = chain.as_plan_steps()
    # A chain is as deep as it is long: its one limit is its number of steps.
    limits = PlanLimits(max_steps=settings.max_chain_steps, max_depth=settings.max_chain_steps)
    plan = PlanCreate(steps=steps, priority=chain.priority)
    async with db.session() as session:
        problems = validate_plan(plan, await offered_tags(session), limits, reference_ancestors=True)
    problems += input_problems(steps, settings)
    if problems:
        raise PlanInvalid(problems)
    return await _create(
        db, temporal, settings, client_id, "chain", chain.name, steps, policies, chain.priority, chain.idempotency_key
    )


async def create_plan(db: Database, temporal: Client, settings: Settings, client_id: str, plan: PlanCreate) -> PlanView:
    limits = PlanLimits(max_steps=settings.max_plan_steps, max_depth=settings.max_plan_depth)
    async with db.session() as session:
        problems = validate_plan(plan, await offered_tags(session), limits) + input_problems(plan.steps, settings)
    if problems:
        raise PlanInvalid(problems)
    return await _create(
        db, temporal, settings, client_id, "plan", plan.name, plan.steps, {}, plan.priority, plan.idempotency_key
    )


async def get_composition(
    session: AsyncSession, settings: Settings, kind: str, composition_id: str, client_id: str | None
) -> PlanView:
    found = await session.get(Composition, composition_id)
    row = owned(found if found is None or found.kind == kind else None, client_id, f"{kind} {composition_id!r}")
    tasks = {
        t.step_name: t for t in (await session.execute(select(Task).where(Task.parent_id == composition_id))).scalars()
    }
    steps = []
    for raw in row.spec["steps"]:
        name = raw["name"]
        state = row.steps.get(name, {})
        task = tasks.get(name)
        steps.append(
            PlanStepView(
                name=name,
                type=task.type if task else raw.get("type"),
                depends_on=raw.get("depends_on", []),
                status=state.get("status", "pending"),
                task_id=state.get("task_id") or (task.id if task else None),
                reason=state.get("reason"),
                result=task.result if task else None,
                started_at=as_utc(task.started_at) if task else None,
                completed_at=as_utc(task.completed_at) if task else None,
            )
        )
    done = sum(1 for s in steps if s.status in {"succeeded", "failed", "skipped", "cancelled"})
    return PlanView(
        id=row.id,
        kind=row.kind,
        name=row.name,
        status=row.status,
        progress=f"{done}/{len(steps)}",
        steps=steps,
        workflow_id=row.workflow_id,
        temporal_ui_url=settings.workflow_ui_link(row.workflow_id),
        created_at=as_utc(row.created_at) or utcnow(),
        completed_at=as_utc(row.completed_at),
    )


async def cancel_composition(
    db: Database, temporal: Client, settings: Settings, kind: str, composition_id: str, client_id: str | None
) -> PlanView:
    async with db.session() as session:
        view = await get_composition(session, settings, kind, composition_id, client_id)
    if view.status in FINAL:
        raise Conflict(f"{kind} {composition_id!r} already finished with status {view.status}")
    try:
        await temporal.get_workflow_handle(view.workflow_id).cancel()
    except RPCError as exc:
        raise Unavailable(f"could not reach Temporal to cancel the {kind}: {exc.message}") from exc
    return view


async def prepare_step(db: Database, settings: Settings, request: PrepareStepRequest) -> PreparedStep:
    """Build the step's input from the outputs it uses, and record its task (idempotently).

    Outputs travel by reference: the workflow sends step names and task ids, the outputs are read here from
    the registry DB, and the built input is written back to it; the agent call reads it from there. Only the
    outputs the step uses are read (its references and, in a chain, the previous output).
    """
    async with db.session() as session:
        row = await session.get(Composition, request.composition_id)
        if row is None:
            return PreparedStep(error="the composition no longer exists")
        raw = next(s for s in row.spec["steps"] if s["name"] == request.step)
        step = PlanStep.model_validate(raw)
        try:
            used = {ref.step for ref in find_references(step.input)}
        except ReferenceError_ as exc:
            return PreparedStep(error=str(exc))
        if request.previous is not None:
            used.add(request.previous)
        wanted = {name: task_id for name, task_id in request.outputs_from.items() if name in used}
        ids = list(wanted.values())
        results = (
            {t.id: t.result for t in (await session.execute(select(Task).where(Task.id.in_(ids)))).scalars()}
            if ids
            else {}
        )
    outputs = {name: output_of(results.get(task_id)) for name, task_id in wanted.items()}
    try:
        step_input = resolve(step.input, outputs)
    except ReferenceError_ as exc:
        return PreparedStep(error=str(exc))
    if request.previous is not None and request.previous in outputs:
        previous = outputs[request.previous]
        base = previous if isinstance(previous, dict) else {"previous": previous}
        step_input = {**base, **step_input}
    if request.previous_error is not None:
        step_input = {**step_input, "previous_error": request.previous_error}
    size = _input_size(step_input)
    if size > settings.max_step_input_bytes:
        return PreparedStep(
            error=f"the step's input is {size} bytes with the outputs it uses; the limit is "
            f"{settings.max_step_input_bytes} bytes (AINS_MAX_STEP_INPUT_BYTES)"
        )
    # The step's own input was checked against max_task_input_bytes when the composition was created; what
    # the outputs of earlier steps add is bounded by max_step_input_bytes instead.
    step_settings = settings.model_copy(update={"max_task_input_bytes": settings.max_step_input_bytes})
    try:
        spec = TaskCreate(
            type=step.type,
            template_id=step.template_id,
            input=step_input,
            required_capabilities=step.required_capabilities,
            priority=row.spec["priority"],
            timeout_seconds=step.timeout_seconds,
            max_attempts=step.max_attempts,
        )
        task, _ = await record_task(
            db,
            step_settings,
            row.client_id,
            spec,
            parent=Parent(id=row.id, step=step.name),
            task_id=step_task_id(row.id, step.name),
        )
    except (AinsError, ValueError) as exc:
        return PreparedStep(error=getattr(exc, "message", str(exc)))
    return PreparedStep(task=workflow_input(task, settings, []))


async def save_state(session: AsyncSession, state: CompositionState) -> None:
    row = await session.get(Composition, state.composition_id)
    if row is None:
        return
    row.status = state.status
    row.steps = state.steps
    row.updated_at = utcnow()
    if state.status in FINAL and row.completed_at is None:
        row.completed_at = utcnow()
