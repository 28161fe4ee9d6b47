"""Who sees a row: the client that owns it, or an admin (a caller whose ``client_id`` is None sees every client's).
Another client's row is *not found*, never *forbidden*, so its existence is not disclosed."""

from __future__ import annotations

from typing import Protocol, TypeVar

from ains.core.platform.errors import NotFound


class _Owned(Protocol):
    @property
    def client_id(self) -> str | None: ...


Row = TypeVar("Row", bound=_Owned)


def visible(owner: str | None, client_id: str | None) -> bool:
    """Whether a row owned by ``owner`` is visible to a caller seeing ``client_id``'s rows (None: every client's)."""
    return client_id is None or owner == client_id


def owned(row: Row | None, client_id: str | None, what: str) -> Row:
    """``row`` when it exists and the caller sees it, else NotFound("<what> not found")."""
    if row is None or not visible(row.client_id, client_id):
        raise NotFound(f"{what} not found")
    return row
