"""One way to page a list: keyset pagination behind one opaque cursor format, for every list endpoint.

A list is ordered by a key that is unique per row (for example ``(created_at, id)``), all ascending or all
descending; a page is the ``limit`` rows after the previous page's last key, read with one row more to know
whether another page follows. Rows written while a client pages never make it skip or repeat a row (an offset
did, for webhook deliveries).

A cursor is ``<list>.<base64url of the JSON array of the last row's key>``: opaque to clients, and checked on the
way in. A cursor of another list, of an older format (the bare ids and offsets before 2026-12-08) or with values
that do not fit the key's columns is refused with 422 and a message saying what to pass instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, DateTime, Integer, Select, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from ains.core.platform.errors import InvalidInput
from ains.models.tables import as_utc

R = TypeVar("R")
Q = TypeVar("Q", bound=Select[Any])
# An INTEGER column is 32 bits on Postgres: a larger key names no row and would fail as an overflow (a 500).
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
# Longer than any cursor a list mints (a two-column key with a 64-character id is about 130 characters).
CURSOR_MAX_LENGTH = 500


@dataclass(frozen=True)
class Keyset:
    """How one list is ordered and where its pages start. ``name`` tells the lists' cursors apart."""

    name: str
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool = False

    def page_query(self, query: Q, limit: int, cursor: str | None) -> Q:
        """``query`` in key order, after the cursor's row (when given), reading ``limit`` + 1 rows."""
        ordered = query.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns)).limit(limit + 1)
        return ordered if not cursor else ordered.where(self.after(self.decode(cursor)))

    def after(self, key: tuple[Any, ...]) -> ColumnElement[bool]:
        """Rows that come after ``key`` in this list's order."""
        if len(self.columns) == 1:
            (column,), (value,) = self.columns, key
            single: ColumnElement[bool] = column < value if self.descending else column > value
            return single
        row = tuple_(*self.columns)
        bound = tuple_(*(literal(v, type_=c.type) for c, v in zip(self.columns, key, strict=True)))
        return row < bound if self.descending else row > bound

    def page(self, rows: Sequence[R], limit: int) -> tuple[list[R], str | None]:
        """The page's rows and the cursor of the next page (None on the last), from ``page_query``'s rows: ORM
        objects, or result rows that name the key's columns."""
        items = list(rows[:limit])
        return items, (self.encode(self.key_of(items[-1])) if len(rows) > limit else None)

    def key_of(self, row: object) -> tuple[Any, ...]:
        return tuple(getattr(row, column.key) for column in self.columns)

    def encode(self, key: tuple[Any, ...]) -> str:
        values = [(as_utc(v) or v).isoformat() if isinstance(v, datetime) else v for v in key]
        packed = base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{self.name}.{packed}"

    def decode(self, cursor: str) -> tuple[Any, ...]:
        name, _, packed = cursor.partition(".")
        try:
            if name != self.name:
                raise ValueError(f"not a cursor of {self.name}")
            values = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
            if not isinstance(values, list) or len(values) != len(self.columns):
                raise ValueError("wrong shape")
            return tuple(_value(column, value) for column, value in zip(self.columns, values, strict=True))
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"cursor {cursor[:80]!r} is not a cursor of this list; pass the next_cursor of a previous page "
                "of the same list, or leave cursor out for the first page"
            ) from exc


def _value(column: InstrumentedAttribute[Any], value: Any) -> Any:
    """A cursor's value as the column's type, or ValueError."""
    column_type = column.type
    if isinstance(column_type, DateTime):
        if not isinstance(value, str):
            raise ValueError("not a timestamp")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a timestamp without its zone")
        try:
            return moment.astimezone(UTC)  # OverflowError at the ends of the calendar, which Postgres refuses too
        except OverflowError as exc:
            raise ValueError("a timestamp out of range") from exc
    if isinstance(column_type, Integer):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("not an integer")
        if not 0 <= value <= (BIGINT_MAX if isinstance(column_type, BigInteger) else INTEGER_MAX):
            raise ValueError("out of the column's range")
        return value
    if not isinstance(value, str):
        raise ValueError("not a string")
    length = getattr(column_type, "length", None)
    if "\x00" in value or (length is not None and len(value) > length):
        raise ValueError("not a value of the column")  # Postgres refuses NUL in text; no stored key is longer
    return value
