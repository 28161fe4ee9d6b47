"""core.access.ownership: a client sees its own rows, an admin every client's; another client's row is not found."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ains.core.access.ownership import owned, visible
from ains.core.platform.errors import NotFound


@dataclass
class Row:
    client_id: str | None


def test_a_client_sees_only_its_own_rows_and_an_admin_sees_all() -> None:
    assert visible("c1", "c1")
    assert not visible("c1", "c2")
    assert not visible(None, "c2")  # a row of no client is an admin's
    assert visible("c1", None) and visible(None, None)


def test_owned_returns_the_row_or_says_not_found_without_disclosing_it() -> None:
    mine = Row("c1")
    assert owned(mine, "c1", "task 't1'") is mine
    assert owned(mine, None, "task 't1'") is mine
    for row in (Row("c2"), None):
        with pytest.raises(NotFound, match=r"^task 't1' not found$"):
            owned(row, "c1", "task 't1'")
