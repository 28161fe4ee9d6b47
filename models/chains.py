"""Task chains: ordered steps, each step's output feeding the next step's input."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from ains.models.capabilities import check_requirements
from ains.models.common import StrictModel
from ains.models.plans import PLAN_STEPS_CEILING, STEP_NAME_PATTERN, PlanStep
from ains.models.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from ains.models.tasks import TASK_TYPE_PATTERN

# Default of AINS_MAX_CHAIN_STEPS (checked when the chain is created; see models.plans for the schema ceiling).
MAX_CHAIN_STEPS = 1000


class FailurePolicy(StrEnum):
    """What a failed step does to the chain."""

    STOP = "stop"  # the chain fails; later steps are skipped
    SKIP = "skip"  # as if the step were not there: the next step gets the last successful output
    CONTINUE = "continue"  # the next step runs with no previous output (and the error under "previous_error")


class ChainStep(StrictModel):
    name: str = Field(pattern=STEP_NAME_PATTERN)
    type: str | None = Field(default=None, pattern=TASK_TYPE_PATTERN)
    template_id: str | None = Field(default=None, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)
    required_capabilities: list[str] = Field(default_factory=list, max_length=20)
    timeout_seconds: int = Field(strict=True, default=300, ge=1)
    max_attempts: int = Field(strict=True, default=3, ge=1)
    on_failure: FailurePolicy = FailurePolicy.STOP
    pass_output: bool = Field(
        strict=True,
        default=True,
        description="Merge the previous step's output into this step's input (this step's own keys win).",
    )

    @field_validator("required_capabilities")
    @classmethod
    def _check_requirements(cls, value: list[str]) -> list[str]:
        return check_requirements(value)

    @model_validator(mode="after")
    def _type_or_template(self) -> ChainStep:
        if self.type is None and self.template_id is None:
            raise ValueError(f"step {self.name!r}: type is required (or give a template_id)")
        return self


class ChainCreate(StrictModel):
    name: str | None = Field(default=None, max_length=200)
    steps: list[ChainStep] = Field(min_length=1, max_length=PLAN_STEPS_CEILING)
    priority: int = Field(strict=True, default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_names(self) -> ChainCreate:
        names = [s.name for s in self.steps]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"step names must be unique: {', '.join(repeated)}")
        return self

    def as_plan_steps(self) -> list[PlanStep]:
        """The chain as a DAG: each step depends on the step before it, and so on every earlier step, whose
        outputs it may reference (validate with ``reference_ancestors``). One dependency per step keeps a long
        chain's spec and workflow input linear in its length."""
        steps: list[PlanStep] = []
        for index, step in enumerate(self.steps):
            steps.append(
                PlanStep(
                    name=step.name,
                    type=step.type,
                    template_id=step.template_id,
                    input=step.input,
                    required_capabilities=step.required_capabilities,
                    depends_on=[self.steps[index - 1].name] if index else [],
                    timeout_seconds=step.timeout_seconds,
                    max_attempts=step.max_attempts,
                )
            )
        return steps
