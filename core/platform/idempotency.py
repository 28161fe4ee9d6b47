"""Idempotent creation, one way for tasks, batches and compositions: an idempotency key maps to one id, the
request is fingerprinted, and a repeat is answered with what the first request created, or refused with 409
when the same key comes with a different request.

The ids and fingerprints of rows already stored must not change, so each caller keeps its own UUID namespace
and name scheme, and compositions their original JSON separators (see ``request_hash``). A batch checks its
items' keys in bulk, one query for all (core.composition.batches), with the same ids, fingerprints and message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import Database
from ains.core.platform.errors import Conflict

Created = TypeVar("Created")
Stored = TypeVar("Stored")


def idempotent_id(prefix: str, namespace: uuid.UUID, key_name: str | None) -> str:
    """``<prefix>_<hex>``: random without a key, else the one id ``key_name`` (the key with its scope) maps to."""
    value = uuid.uuid4() if key_name is None else uuid.uuid5(namespace, key_name)
    return f"{prefix}_{value.hex}"


def request_hash(body: Any, *, compact: bool = True) -> str:
    """SHA-256 of ``body`` as canonical JSON (sorted keys). ``compact=False``: json's default separators, which
    compositions were first fingerprinted with."""
    separators = (",", ":") if compact else (", ", ": ")
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=separators).encode()).hexdigest()


def key_reused(key: str | None, what: str = "request") -> str:
    return f"idempotency key {key!r} was already used for a different {what}"


async def create_once(
    db: Database,
    write: Callable[[AsyncSession], Awaitable[Created]],
    stored: Callable[[AsyncSession], Awaitable[Stored | None]],
    same_request: Callable[[Stored], bool],
    conflict: str,
) -> tuple[Created | Stored, bool]:
    """``write`` the new row(s) in one transaction and return them with True; when the id exists already (a
    repeat, or a concurrent request), return the stored row with False if it came from the same request, else
    raise Conflict(``conflict``)."""
    try:
        async with db.transaction() as session:
            return await write(session), True
    except IntegrityError:
        async with db.session() as session:
            existing = await stored(session)
        if existing is None:  # the conflicting row vanished, or another constraint failed: the client can retry
            raise Conflict("a concurrent request for the same resource is in progress; retry") from None
        if not same_request(existing):
            raise Conflict(conflict) from None
        return existing, False
