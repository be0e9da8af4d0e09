"""Cursor pagination: ``limit`` (1-100), ``starting_after`` / ``ending_before`` (ids),
``has_more``; id order unless ``sort`` says otherwise (:mod:`cartera.api.listing`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar, cast

import msgspec
from litestar.params import Parameter
from sqlalchemy import Select

from cartera.api import listing

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


S = TypeVar("S", bound=Select[Any] | Any)


def paginate(stmt: S, id_column: Any, limit: int, starting_after: int | None) -> S:
    """``limit + 1`` rows after the cursor, in the list's order, within the request's
    ``created``/``updated`` ranges (:mod:`cartera.api.listing`)."""
    return cast(S, listing.paginate(stmt, id_column, limit, starting_after))


def page_of(rows: Sequence[Any], limit: int, convert: Any) -> Page[Any]:
    has_more = len(rows) > limit
    kept, backwards = listing.in_order(list(rows[:limit]))
    items = [convert(r) for r in kept]
    if backwards:  # read with ending_before: the cursor of the page before is its first
        cursor = kept[0].id if has_more and kept else None
    else:
        cursor = rows[limit - 1].id if has_more else None
    return Page(data=items, has_more=has_more, next_cursor=cursor)
