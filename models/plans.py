"""Multi-agent plans: named steps with ``depends_on``, validated as a DAG before anything starts.

Pure rules (no I/O): the API validates a submitted plan with ``validate_plan`` and the plan generator runs
exactly the same check on a model-proposed plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from ains.models.capabilities import check_requirements, parse_requirement
from ains.models.common import StrictModel
from ains.models.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from ains.models.references import find_references
from ains.models.tasks import TASK_TYPE_PATTERN

STEP_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"
# Defaults of the configurable limits (AINS_MAX_PLAN_STEPS, AINS_MAX_PLAN_DEPTH and AINS_MAX_CHAIN_STEPS).
# Long compositions continue as new (workflows/composition.py), so these bound the work of one request,
# not Temporal's history; the request body limit (AINS_MAX_REQUEST_BYTES) applies as well.
MAX_PLAN_STEPS = 1000
MAX_PLAN_DEPTH = 1000
# What the request schema accepts whatever the settings say; a configured limit cannot exceed it.
PLAN_STEPS_CEILING = 10_000


@dataclass(frozen=True)
class PlanLimits:
    """How many steps a plan may have, and how long its longest dependency chain (in steps) may be."""

    max_steps: int = MAX_PLAN_STEPS
    max_depth: int = MAX_PLAN_DEPTH


class PlanStep(StrictModel):
    name: str = Field(pattern=STEP_NAME_PATTERN, description="Unique within the plan; referenced by depends_on.")
    type: str | None = Field(default=None, pattern=TASK_TYPE_PATTERN, description="Required without template_id.")
    template_id: str | None = Field(default=None, max_length=64)
    input: dict[str, Any] = Field(
        default_factory=dict,
        description='May reference a dependency\'s output: {"$ref": "steps.<name>.output.<path>"}.',
    )
    required_capabilities: list[str] = Field(default_factory=list, max_length=20)
    depends_on: list[str] = Field(default_factory=list, max_length=PLAN_STEPS_CEILING)
    timeout_seconds: int = Field(strict=True, default=300, ge=1)
    max_attempts: int = Field(strict=True, default=3, ge=1)

    @field_validator("required_capabilities")
    @classmethod
    def _check_requirements(cls, value: list[str]) -> list[str]:
        return check_requirements(value)

    @model_validator(mode="after")
    def _type_or_template(self) -> PlanStep:
        if self.type is None and self.template_id is None:
            raise ValueError(f"step {self.name!r}: type is required (or give a template_id)")
        return self

    def effective_requirements(self) -> list[str]:
        """Capabilities known before execution (a template step's come from its template at run time)."""
        if self.required_capabilities:
            return self.required_capabilities
        return [self.type.lower()] if self.type else []


class PlanCreate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    steps: list[PlanStep] = Field(min_length=1, max_length=PLAN_STEPS_CEILING)
    priority: int = Field(strict=True, default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class PlanProblem(BaseModel):
    """One validation failure; ``code`` is stable, ``path`` names the steps involved (e.g. a cycle)."""

    code: str
    message: str
    steps: list[str] = Field(default_factory=list)


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a path that starts and ends at the same step, or None. Iterative DFS (no recursion limit)."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in sorted(graph):
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, index = stack[-1]
            deps = graph[node]
            if index < len(deps):
                stack[-1] = (node, index + 1)
                nxt = deps[index]
                if color[nxt] == grey:
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def depths(graph: dict[str, list[str]]) -> dict[str, int]:
    """Longest chain of dependencies below each step (0 for a step without dependencies). Graph must be acyclic."""
    result: dict[str, int] = {}
    for root in graph:
        stack = [root]
        while stack:
            node = stack[-1]
            pending = [d for d in graph[node] if d not in result]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            result[node] = 1 + max((result[d] for d in graph[node]), default=-1)
    return result


def _ancestors(graph: dict[str, list[str]], name: str) -> set[str]:
    """Every step ``name`` depends on, directly or not (safe on cyclic graphs)."""
    seen: set[str] = set()
    stack = list(graph.get(name, []))
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, []))
    return seen


def validate_plan(
    plan: PlanCreate,
    offered_tags: set[str] | None = None,
    limits: PlanLimits = PlanLimits(),
    *,
    reference_ancestors: bool = False,
) -> list[PlanProblem]:
    """Every reason the plan cannot run; empty when it can.

    Checks the number of steps, duplicate names, unknown dependencies and references, self-dependencies,
    cycles (with the cycle's path), depth, and (when ``offered_tags`` is given) capabilities that no
    registered agent offers. A reference must name a dependency of the step, or with ``reference_ancestors``
    (chains) any step it depends on indirectly.
    """
    problems: list[PlanProblem] = []
    if len(plan.steps) > limits.max_steps:
        problems.append(
            PlanProblem(
                code="too_many_steps",
                message=f"the plan has {len(plan.steps)} steps; the limit is {limits.max_steps}",
            )
        )
    names = [s.name for s in plan.steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(
            PlanProblem(
                code="duplicate_step", message=f"step names must be unique: {', '.join(duplicates)}", steps=duplicates
            )
        )
    known = set(names)
    graph: dict[str, list[str]] = {}
    for step in plan.steps:
        deps = list(dict.fromkeys(step.depends_on))
        graph.setdefault(step.name, [d for d in deps if d in known and d != step.name])
    ancestors: dict[str, set[str]] = {}
    for step in plan.steps:
        deps = list(dict.fromkeys(step.depends_on))
        unknown = [d for d in deps if d not in known]
        if unknown:
            problems.append(
                PlanProblem(
                    code="unknown_dependency",
                    message=f"step {step.name!r} depends on unknown step(s): {', '.join(unknown)}",
                    steps=[step.name, *unknown],
                )
            )
        if step.name in deps:
            problems.append(
                PlanProblem(code="self_dependency", message=f"step {step.name!r} depends on itself", steps=[step.name])
            )
        for ref in find_references(step.input):
            if ref.step not in known:
                problems.append(
                    PlanProblem(
                        code="unknown_reference",
                        message=f"step {step.name!r} references unknown step {ref.step!r} ({ref.text})",
                        steps=[step.name],
                    )
                )
                continue
            if ref.step in deps:
                continue
            if reference_ancestors:
                if step.name not in ancestors:
                    ancestors[step.name] = _ancestors(graph, step.name)
                if ref.step in ancestors[step.name] and ref.step != step.name:
                    continue
            problems.append(
                PlanProblem(
                    code="reference_without_dependency",
                    message=f"step {step.name!r} references {ref.text} but does not depend on {ref.step!r}",
                    steps=[step.name, ref.step],
                )
            )
        if offered_tags is not None:
            missing = [r for r in step.effective_requirements() if parse_requirement(r).tag not in offered_tags]
            if missing:
                problems.append(
                    PlanProblem(
                        code="unknown_capability",
                        message=f"step {step.name!r} needs {', '.join(missing)}, which no registered agent offers",
                        steps=[step.name],
                    )
                )
    if duplicates:
        return problems
    cycle = _find_cycle(graph)
    if cycle:
        problems.append(PlanProblem(code="cycle", message=f"dependency cycle: {' -> '.join(cycle)}", steps=cycle))
    else:
        deepest = max(depths(graph).values(), default=0)
        if deepest >= limits.max_depth:
            problems.append(
                PlanProblem(
                    code="too_deep",
                    message=f"the longest dependency chain has {deepest + 1} steps; the limit is {limits.max_depth}",
                )
            )
    return problems


class PlanStepView(BaseModel):
    name: str
    type: str | None
    depends_on: list[str]
    status: str
    task_id: str | None
    reason: str | None
    result: dict[str, Any] | None
    started_at: datetime | None
    completed_at: datetime | None


class PlanView(BaseModel):
    id: str
    kind: str
    name: str | None
    status: str
    progress: str
    steps: list[PlanStepView]
    workflow_id: str
    temporal_ui_url: str
    created_at: datetime
    completed_at: datetime | None
