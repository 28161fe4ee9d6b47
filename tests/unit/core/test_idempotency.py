"""core.platform.idempotency: ids and fingerprints of rows stored by earlier versions stay what they were, so a
client retrying a request across an upgrade still gets its first task or composition back; a repeat with another
request is a 409."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import Database
from ains.core.platform.errors import Conflict
from ains.core.platform.idempotency import create_once, idempotent_id, request_hash
from ains.models.tables import TaskTemplate

TASKS_NAMESPACE = uuid.UUID("5b6f3c8e-5c1e-4a7b-9a59-2f1d0c7e8a11")
COMPOSITIONS_NAMESPACE = uuid.UUID("2f0c8a61-3c5e-4f7e-9d55-7b1f4b0f6a23")
BODY = {"priority": 5, "steps": [{"name": "a"}], "policies": {}}


def test_keys_map_to_the_ids_earlier_versions_stored() -> None:
    assert idempotent_id("tsk", TASKS_NAMESPACE, "c1\x00key-1") == "tsk_55034d4b89015d249cf2ce5b035f7578"
    assert idempotent_id("ch", COMPOSITIONS_NAMESPACE, "c1/chain/key-1") == "ch_12261411c0ed5b0a9c720f0841ed954a"
    assert idempotent_id("tsk", TASKS_NAMESPACE, None) != idempotent_id("tsk", TASKS_NAMESPACE, None)


def test_fingerprints_are_the_ones_earlier_versions_stored() -> None:
    assert request_hash(BODY) == "ab43f292dd1dbb435a6a0071bbd81582bc691397994697eeb826d4e112366a3c"
    assert request_hash(BODY, compact=False) == "5127f4900be82e37b09b6db777d66cc622a31b005baf374d333f861e9c43b07b"
    assert request_hash({"b": 1, "a": 2}) == request_hash({"a": 2, "b": 1})


async def test_a_repeat_returns_the_stored_row_and_another_request_with_the_key_is_refused(db: Database) -> None:
    async def attempt(fingerprint: str) -> tuple[TaskTemplate, bool]:
        async def write(session: AsyncSession) -> TaskTemplate:
            row = TaskTemplate(id="tpl_1", client_id="c1", name=fingerprint, task_type="t", defaults={})
            session.add(row)
            return row

        async def stored(session: AsyncSession) -> TaskTemplate | None:
            return await session.get(TaskTemplate, "tpl_1")

        return await create_once(db, write, stored, lambda row: row.name == fingerprint, "key 'k' was used before")

    first, created = await attempt("same")
    again, created_again = await attempt("same")
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    with pytest.raises(Conflict, match="key 'k' was used before"):
        await attempt("other")
