"""Task templates: a named task type with defaults, reused by tasks, chains, plans and schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ains.models.common import StrictModel
from ains.models.tasks import TASK_TYPE_PATTERN, TaskCreate

# Fields a template may preset; everything else about a task comes from the request.
TEMPLATE_FIELDS = frozenset(
    {
        "input",
        "required_capabilities",
        "priority",
        "timeout_seconds",
        "max_attempts",
        "routing_strategy",
        "objectives",
        "min_trust",
        "exclude_agents",
        "queue_timeout_seconds",
        "retry_policy",
    }
)


class TemplateCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    task_type: str = Field(pattern=TASK_TYPE_PATTERN)
    defaults: dict[str, Any] = Field(default_factory=dict, description=f"Any of: {', '.join(sorted(TEMPLATE_FIELDS))}.")

    @model_validator(mode="after")
    def _valid_defaults(self) -> TemplateCreate:
        unknown = sorted(set(self.defaults) - TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(
                f"defaults may not set {', '.join(unknown)}; allowed: {', '.join(sorted(TEMPLATE_FIELDS))}"
            )
        TaskCreate.model_validate({"type": self.task_type, **self.defaults})  # same rules as a task
        return self


class TemplateView(BaseModel):
    id: str
    name: str
    task_type: str
    defaults: dict[str, Any]
    times_used: int
    created_at: datetime
    updated_at: datetime


def apply_template(task_type: str, defaults: dict[str, Any], spec: TaskCreate) -> TaskCreate:
    """The task the request describes: template defaults, overridden by the fields the request set.

    ``input`` objects merge key by key (the request wins); every other field given replaces the default.
    """
    given = spec.model_dump(exclude_unset=True, exclude={"template_id"})
    merged: dict[str, Any] = {**defaults, **{k: v for k, v in given.items() if k != "input"}}
    merged["input"] = {**defaults.get("input", {}), **given.get("input", {})}
    merged.setdefault("type", task_type)
    merged["template_id"] = spec.template_id
    return TaskCreate.model_validate(merged)
