"""core.platform.pagination: one opaque cursor format for every list, and pages that neither skip nor repeat a row
while rows are written between them."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from ains.core.access.audit import ENTRIES
from ains.core.platform.db import Database
from ains.core.platform.errors import InvalidInput
from ains.core.platform.pagination import INTEGER_MAX
from ains.core.tasks.service import TASKS
from ains.core.webhooks.service import DELIVERIES, list_deliveries
from ains.models.tables import WebhookDelivery, utcnow


def _forged(name: str, values: object) -> str:
    return f"{name}." + base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_a_cursor_names_its_list_and_round_trips_its_key() -> None:
    created = utcnow()
    cursor = TASKS.encode((created, "t-1"))
    assert cursor.startswith("tasks.")
    assert TASKS.decode(cursor) == (created, "t-1")
    assert ENTRIES.decode(ENTRIES.encode((INTEGER_MAX,))) == (INTEGER_MAX,)


@pytest.mark.parametrize(
    "cursor",
    [
        "50",  # the offset cursor webhook deliveries used before
        "agt-1",  # the bare ids of agents, schedules and webhooks before
        base64.urlsafe_b64encode(b'["2026-12-01T00:00:00+00:00", "t-1"]').decode(),  # the old task cursor
        "!!!",
        "tasks.!!!",
        _forged("tasks", ["not a time", "t-1"]),
        _forged("tasks", ["2026-12-01T00:00:00+00:00"]),
        _forged("tasks", {"created": "2026-12-01T00:00:00+00:00"}),
        # Values the columns cannot hold (Postgres would refuse them as a 500, not a 422):
        _forged("tasks", ["2026-12-01T00:00:00", "t-1"]),  # no zone
        _forged("tasks", ["0001-01-01T00:00:00+14:00", "t-1"]),
        _forged("tasks", ["9999-12-31T23:59:59-14:00", "t-1"]),
        _forged("tasks", ["2026-12-01T00:00:00+00:00", "t\u0000"]),
        _forged("tasks", ["2026-12-01T00:00:00+00:00", "t" * 65]),
    ],
)
def test_anything_but_a_cursor_of_the_same_list_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="not a cursor of this list"):
        TASKS.decode(cursor)


def test_a_cursor_of_another_list_is_refused() -> None:
    with pytest.raises(InvalidInput):
        DELIVERIES.decode(TASKS.encode((utcnow(), "t-1")))


@pytest.mark.parametrize("value", [INTEGER_MAX + 1, 2**63, -1, True, "12", 1.5])
def test_an_integer_key_outside_its_column_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        ENTRIES.decode(_forged("audit", [value]))


async def _add_deliveries(db: Database, ids: list[str], created: object) -> None:
    async with db.transaction() as session:
        for delivery_id in ids:
            session.add(
                WebhookDelivery(
                    id=delivery_id,
                    event_id=f"evt-{delivery_id}",
                    event_type="task.succeeded",
                    client_id="c1",
                    url="http://127.0.0.1:9/hook",
                    payload={"n": delivery_id},
                    created_at=created,
                )
            )


async def test_deliveries_page_newest_first_without_skipping_or_repeating_as_new_ones_arrive(db: Database) -> None:
    start = utcnow()
    # Three share a timestamp: the id breaks the tie.
    await _add_deliveries(db, ["d0", "d1", "d2"], start)
    await _add_deliveries(db, ["d3"], start + timedelta(seconds=1))
    await _add_deliveries(db, ["d4"], start + timedelta(seconds=2))
    seen: list[str] = []
    cursor = None
    for arrival in range(10):
        async with db.session() as session:
            page = await list_deliveries(session, "c1", limit=2, cursor=cursor)
        seen += [item.id for item in page.items]
        # Newer deliveries arrive between the pages: an offset would have repeated rows of the first pages.
        await _add_deliveries(db, [f"new-{arrival}"], start + timedelta(seconds=10 + arrival))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["d4", "d3", "d2", "d1", "d0"]
