"""Schedule request validation: cron syntax and ranges, time zones, timing and target rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ains.models.schedules import ScheduleBackfill, ScheduleCreate, ScheduleUpdate, validate_cron

TARGET = {"kind": "task", "task": {"type": "echo"}}


@pytest.mark.parametrize(
    "expression",
    ["*/5 * * * *", "0 9 * * MON-FRI", "0 0 1 jan,jul ?", "30 2 * * 0 2030", "*/10 * * * * * *", "@daily"],
)
def test_valid_cron(expression: str) -> None:
    assert validate_cron(expression) == expression
    assert validate_cron(expression.replace(" ", "  ")) == expression


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute field: 60 is outside 0-59"),
        ("* 24 * * *", "hour field: 24 is outside 0-23"),
        ("* * 0 * *", "day of month field: 0 is outside 1-31"),
        ("* * * 13 *", "month field: 13 is outside 1-12"),
        ("* * * foo *", "month field: 'foo' is not a number"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step must be at least 1"),
        ("? * * * *", "only allowed for day of month or day of week"),
        ("1,,2 * * * *", "is not a value"),
        ("@fortnightly", "has 1 fields"),
    ],
)
def test_invalid_cron(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_cron(expression)


def _create(**body: Any) -> ScheduleCreate:
    return ScheduleCreate.model_validate({"target": TARGET, **body})


def test_create_rules() -> None:
    spec = _create(interval_seconds=30)
    assert spec.timezone == "UTC" and spec.overlap == "skip" and spec.target.kind == "task"
    for body, reason in (
        ({}, "exactly one of cron or interval_seconds"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "exactly one"),
        ({"cron": "* * * * *", "timezone": "Nowhere/City"}, "unknown time zone"),
        ({"interval_seconds": 0}, "greater than or equal to 1"),
        ({"interval_seconds": 5, "start_at": "2030-01-01T00:00:00"}, "must include a time zone"),
        ({"interval_seconds": 5, "catchup_window_seconds": 1}, "greater than or equal to 10"),
        ({"interval_seconds": 5, "extra": 1}, "Extra inputs are not permitted"),
    ):
        with pytest.raises(ValidationError, match=reason):
            _create(**body)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        ScheduleCreate.model_validate({"interval_seconds": 5, "target": {"kind": "plan"}})


def test_update_and_backfill_rules() -> None:
    assert ScheduleUpdate.model_validate({"cron": "0 * * * *"}).cron == "0 * * * *"
    with pytest.raises(ValidationError, match="at most one"):
        ScheduleUpdate.model_validate({"cron": "0 * * * *", "interval_seconds": 5})
    with pytest.raises(ValidationError, match="end_at must be after start_at"):
        ScheduleBackfill.model_validate({"start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"})
    with pytest.raises(ValidationError, match="at most 366 days"):
        ScheduleBackfill.model_validate({"start_at": "2020-01-01T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"})
