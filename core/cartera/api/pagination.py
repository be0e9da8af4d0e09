"""Cursor pagination: ``limit`` (1-100), ``starting_after`` (an id), ``has_more``; id order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter
from sqlalchemy import Select

T = TypeVar("T")

MAX_ID = 2**63 - 1
"""Ids are 64-bit: a larger number is refused (422) before it reaches the database."""

Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size, 1 to 100.")]
StartingAfter = Annotated[
    int | None,
    Parameter(ge=1, le=MAX_ID, description="Cursor: return items after the item with this id."),
]
Id = Annotated[int, Parameter(ge=1, le=MAX_ID)]
"""A path id."""
IdFilter = Annotated[int | None, Parameter(ge=1, le=MAX_ID)]
"""An optional id to filter a list by."""
Days = Annotated[int | None, Parameter(ge=0, le=36_500)]
"""A number of days (e.g. days past due), at most a century."""


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; pass the last item's id as ``starting_after`` for the next."""

    data: list[T]
    has_more: bool
    next_cursor: int | None = None


def paginate(stmt: Select[Any], id_column: Any, limit: int,
             starting_after: int | None) -> Select[Any]:
    if starting_after is not None:
        stmt = stmt.where(id_column > starting_after)
    return stmt.order_by(id_column).limit(limit + 1)


def page_of(rows: Sequence[Any], limit: int, convert: Any) -> Page[Any]:
    has_more = len(rows) > limit
    items = [convert(r) for r in rows[:limit]]
    cursor = rows[limit - 1].id if has_more else None
    return Page(data=items, has_more=has_more, next_cursor=cursor)
