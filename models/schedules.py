"""Wire models for schedules: when (cron or interval, time zone, window), what (a target), and how
overlapping runs are handled. Validation here gives a 422 with the reason before Temporal is asked."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from ains.models.common import StrictModel
from ains.models.tasks import TaskCreate

CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (name, low, high, names); Temporal reads 5 fields, 6 (+ year) or 7 (second + ... + year).
_SECOND = ("second", 0, 59, None)
_MINUTE = ("minute", 0, 59, None)
_HOUR = ("hour", 0, 23, None)
_DOM = ("day of month", 1, 31, None)
_MONTH = ("month", 1, 12, _MONTHS)
_DOW = ("day of week", 0, 7, _DAYS)
_YEAR = ("year", 1970, 2999, None)
_LAYOUTS = {
    5: (_MINUTE, _HOUR, _DOM, _MONTH, _DOW),
    6: (_MINUTE, _HOUR, _DOM, _MONTH, _DOW, _YEAR),
    7: (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW, _YEAR),
}
_ITEM = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _value(token: str, field: tuple[str, int, int, dict[str, int] | None]) -> int:
    name, low, high, names = field
    if names is not None and token.lower() in names:
        return names[token.lower()]
    if not token.isdigit():
        raise ValueError(f"{name} field: {token!r} is not a number")
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{name} field: {number} is outside {low}-{high}")
    return number


def validate_cron(expression: str) -> str:
    """Check a cron expression's shape and ranges; returns it normalised (single spaces)."""
    text = " ".join(expression.split())
    if text.lower() in CRON_ALIASES:
        return text.lower()
    parts = text.split(" ")
    layout = _LAYOUTS.get(len(parts))
    if layout is None:
        raise ValueError(
            f"cron expression {expression!r} has {len(parts)} fields; use 5 (minute hour day-of-month month "
            "day-of-week), 6 (+ year) or 7 (second first, year last), or one of " + ", ".join(sorted(CRON_ALIASES))
        )
    for part, field in zip(parts, layout, strict=True):
        for item in part.split(","):
            match = _ITEM.match(item)
            if match is None:
                raise ValueError(f"{field[0]} field: {item!r} is not a value, range, list or step")
            if match["step"] is not None and int(match["step"]) == 0:
                raise ValueError(f"{field[0]} field: step must be at least 1")
            span = match["range"]
            if span in {"*", "?"}:
                if span == "?" and field not in (_DOM, _DOW):
                    raise ValueError(f"{field[0]} field: '?' is only allowed for day of month or day of week")
                continue
            bounds = [_value(token, field) for token in span.split("-")]
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"{field[0]} field: range {span!r} runs backwards")
    return text


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    CANCEL_OTHER = "cancel_other"
    ALLOW_ALL = "allow_all"


class TaskTarget(StrictModel):
    kind: Literal["task"] = "task"
    task: TaskCreate

    @field_validator("task")
    @classmethod
    def _no_idempotency_key(cls, value: TaskCreate) -> TaskCreate:
        if value.idempotency_key is not None:
            raise ValueError("idempotency_key is set per run by the schedule; leave it out")
        return value


# What a schedule runs. A discriminated union on ``kind``: chains and plans join it when they exist.
ScheduleTarget = Annotated[TaskTarget, Field(discriminator="kind")]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
    return value


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must include a time zone, e.g. 2030-01-01T00:00:00Z")
    return value


class _Timing(StrictModel):
    cron: str | None = Field(default=None, max_length=200, description="Cron expression, e.g. '0 9 * * MON-FRI'.")
    interval_seconds: int | None = Field(
        strict=True, default=None, ge=1, le=366 * 86_400, description="Or: every N seconds."
    )
    timezone: str | None = Field(default=None, max_length=64, description="IANA zone the cron is read in.")
    overlap: OverlapPolicy | None = None
    catchup_window_seconds: int | None = Field(strict=True, default=None, ge=10, le=366 * 86_400)
    jitter_seconds: int | None = Field(strict=True, default=None, ge=0, le=86_400)
    start_at: datetime | None = None
    end_at: datetime | None = None

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("start_at", "end_at")
    @classmethod
    def _check_aware(cls, value: datetime | None, info: Any) -> datetime | None:
        return _aware(value, info.field_name)


class ScheduleCreate(_Timing):
    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default="UTC", max_length=64)
    overlap: OverlapPolicy | None = OverlapPolicy.SKIP
    catchup_window_seconds: int | None = Field(strict=True, default=60, ge=10, le=366 * 86_400)
    jitter_seconds: int | None = Field(strict=True, default=0, ge=0, le=86_400)
    target: ScheduleTarget
    paused: bool = Field(strict=True, default=False)
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron or interval_seconds")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class ScheduleUpdate(_Timing):
    """Fields given replace the schedule's; giving cron drops interval_seconds and vice versa."""

    name: str | None = Field(default=None, max_length=200)
    target: ScheduleTarget | None = None

    @model_validator(mode="after")
    def _not_both(self) -> ScheduleUpdate:
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("give at most one of cron or interval_seconds")
        return self


class ScheduleNote(StrictModel):
    note: str | None = Field(default=None, max_length=500)


class ScheduleTrigger(StrictModel):
    overlap: OverlapPolicy | None = Field(default=None, description="Default: the schedule's policy.")


class ScheduleBackfill(StrictModel):
    start_at: datetime
    end_at: datetime
    overlap: OverlapPolicy = OverlapPolicy.BUFFER_ALL

    @field_validator("start_at", "end_at")
    @classmethod
    def _check_aware(cls, value: datetime, info: Any) -> datetime:
        _aware(value, info.field_name)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleBackfill:
        if self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        if (self.end_at - self.start_at).days > 366:
            raise ValueError("a backfill may cover at most 366 days")
        return self


class ScheduleRun(BaseModel):
    task_id: str
    status: str
    created_at: datetime
    completed_at: datetime | None


class RunCounts(BaseModel):
    ok: int
    failed: int
    skipped: int
    running: int


class ScheduleView(BaseModel):
    id: str
    name: str | None
    cron: str | None
    interval_seconds: int | None
    timezone: str
    overlap: OverlapPolicy
    catchup_window_seconds: int
    jitter_seconds: int
    start_at: datetime | None
    end_at: datetime | None
    target: TaskTarget
    paused: bool
    note: str | None
    next_run_times: list[datetime]
    recent_runs: list[ScheduleRun]
    run_counts: RunCounts
    temporal_schedule_id: str
    temporal_ui_url: str
    created_at: datetime
    updated_at: datetime


class ScheduledRunInput(BaseModel):
    """The argument of every run the Temporal schedule starts."""

    schedule_id: str
    client_id: str


class ScheduledSubmit(BaseModel):
    schedule_id: str
    client_id: str
    run_id: str


class ScheduledSubmitResult(BaseModel):
    task_id: str | None
    workflow_id: str | None
    timeout_seconds: float = 0.0
    error: str | None = None


class AwaitTaskRequest(BaseModel):
    task_id: str
    workflow_id: str


class ScheduledRunResult(BaseModel):
    task_id: str
    status: str
