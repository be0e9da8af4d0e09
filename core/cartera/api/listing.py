"""What every list takes besides its own filters, applied by :func:`paginate`.

* ``created[gte]``, ``created[gt]``, ``created[lte]``, ``created[lt]`` and the same for
  ``updated``: RFC 3339 instants (a bare date is midnight UTC) bounding ``created_at`` /
  ``updated_at`` (a list whose objects have no ``updated_at`` refuses ``updated[...]``, 422);
* ``sort``: comma-separated keys ``id``, ``created``, ``updated``, each optionally prefixed
  with ``-`` for descending (``sort=-created``); default ``id`` (oldest first). Ties are
  broken by id, so the order is total and the cursors below stay exact;
* ``ending_before``: the cursor backwards, an id: the page of items just before it in the
  list's order (``starting_after``'s mirror). With it, ``has_more`` says whether there are
  items before the page and ``next_cursor`` is the ``ending_before`` of the page before.

The request hook (:mod:`cartera.api.parameters`) parses them for any handler that returns
a :class:`~cartera.api.pagination.Page` into :data:`CURRENT`; :func:`paginate` turns them
into WHERE and ORDER BY of the list's one statement (keyset conditions on indexed columns,
no OFFSET), and :func:`page_of` puts a backwards page back in order.
"""

from __future__ import annotations

import typing
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select

from cartera.errors import Invalid

RANGE_FIELDS = {"created": "created_at", "updated": "updated_at"}
RANGE_OPS = ("gte", "gt", "lte", "lt")
RANGE_PARAMETERS = tuple(f"{f}[{op}]" for f in RANGE_FIELDS for op in RANGE_OPS)
SORT_KEYS = {"id": "id", **RANGE_FIELDS}
LIST_PARAMETERS = frozenset({*RANGE_PARAMETERS, "ending_before", "sort"})
MAX_ID = 2**63 - 1


@dataclass
class ListQuery:
    ranges: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    """(parameter, column name, operator, bound)"""
    sort: list[tuple[str, str, bool]] = field(default_factory=list)
    """(parameter key, column name, descending)"""
    ending_before: int | None = None
    backwards: bool = False


CURRENT: ContextVar[ListQuery | None] = ContextVar("cartera_list_query", default=None)


def returns_page(handler: Any) -> bool:
    from cartera.api.pagination import Page

    annotation = handler.parsed_fn_signature.return_type.annotation
    return annotation is Page or typing.get_origin(annotation) is Page


def _instant(name: str, raw: str) -> datetime:
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}: expected an RFC 3339 date-time or a date, got {raw!r}",
                      param=name) from None
    if value.tzinfo is None:
        raise Invalid(f"{name}: give the time zone (e.g. 2024-06-01T00:00:00Z)", param=name)
    if not 1900 <= value.year <= 2999:
        raise Invalid(f"{name}: dates must be between 1900 and 2999", code="date_out_of_range",
                      param=name)
    return value.astimezone(UTC)


def parse(params: Any) -> ListQuery:
    """The list parameters of a request's query (a multi-dict); 422 naming the one at fault."""
    query = ListQuery()
    for name in RANGE_PARAMETERS:
        raw = params.get(name)
        if raw is not None:
            field_name, op = name[:-1].split("[")
            query.ranges.append((name, RANGE_FIELDS[field_name], op, _instant(name, raw)))
    raw_sort = params.get("sort")
    if raw_sort is not None:
        seen = set()
        for part in raw_sort.split(","):
            key = part.strip()
            descending = key.startswith("-")
            key = key.removeprefix("-")
            if key not in SORT_KEYS or key in seen:
                raise Invalid(f"sort: {part.strip()!r} is not one of id, created, updated "
                              "(prefix - for descending; each once)", code="invalid_sort",
                              param="sort")
            seen.add(key)
            query.sort.append((key, SORT_KEYS[key], descending))
    raw_before = params.get("ending_before")
    if raw_before is not None:
        if not raw_before.isdigit() or not 1 <= int(raw_before) <= MAX_ID:
            raise Invalid("ending_before: expected an id", param="ending_before")
        if params.get("starting_after") is not None:
            raise Invalid("give starting_after or ending_before, not both",
                          code="conflicting_cursors", param="ending_before")
        query.ending_before = int(raw_before)
    return query


CREATED_COLUMNS = ("created_at", "at", "occurred_at")
"""What "created" is on objects without a ``created_at``: when they happened (a move)."""


def _column(id_column: Any, name: str, param: str) -> Any:
    owner = getattr(id_column, "class_", None)
    column = None
    for candidate in CREATED_COLUMNS if name == "created_at" else (name,):
        column = (getattr(owner, candidate, None) if owner is not None
                  else id_column.table.c.get(candidate))
        if column is not None:
            break
    if column is None:
        raise Invalid(f"{param}: these objects have no {name}", code="unsupported_parameter",
                      param=param)
    return column


def paginate(stmt: Any, id_column: Any, limit: int, starting_after: int | None) -> Any:
    """The page's statement: the request's ranges, order and cursor (see the module)."""
    query = CURRENT.get()
    if query is None or (not query.ranges and not query.sort and query.ending_before is None):
        if starting_after is not None:
            stmt = stmt.where(id_column > starting_after)
        return stmt.order_by(id_column).limit(limit + 1)
    cursor = starting_after
    if query.ending_before is not None:
        cursor = query.ending_before
        query.backwards = True
    return _ordered(stmt, id_column, [(p, n, op, b) for p, n, op, b in query.ranges],
                    query.sort, cursor, query.backwards, limit + 1)


def page_values(limit: int, starting_after: int | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The shape of the page's statement (what :func:`paginate_bound` builds from) and its
    bound values (``list_limit``, ``list_cursor``, ``list_range_N``): two requests of one
    shape differ only in these values, so one statement serves both. Marks the request's
    list query backwards with ``ending_before``, as :func:`paginate` does."""
    query = CURRENT.get()
    values: dict[str, Any] = {"list_limit": limit + 1}
    if query is None:
        ranges: tuple[Any, ...] = ()
        sort: tuple[Any, ...] = ()
        cursor = starting_after
    else:
        ranges = tuple((p, n, op) for p, n, op, _ in query.ranges)
        sort = tuple(query.sort)
        for i, (_, _, _, bound) in enumerate(query.ranges):
            values[f"list_range_{i}"] = bound
        cursor = starting_after
        if query.ending_before is not None:
            cursor = query.ending_before
            query.backwards = True
    backwards = query is not None and query.backwards
    if cursor is not None:
        values["list_cursor"] = cursor
    return (ranges, sort, cursor is not None, backwards), values


def paginate_bound(stmt: Any, id_column: Any, shape: tuple[Any, ...]) -> Any:
    """:func:`paginate`'s statement for a :func:`page_values` shape, its values as bind
    parameters of the names :func:`page_values` gives."""
    ranges, sort, has_cursor, backwards = shape
    bound: list[tuple[str, str, str, Any]] = [
        (p, n, op, bindparam(f"list_range_{i}")) for i, (p, n, op) in enumerate(ranges)]
    cursor: Any = bindparam("list_cursor") if has_cursor else None
    if not ranges and not sort and not backwards:
        if cursor is not None:
            stmt = stmt.where(id_column > cursor)
        return stmt.order_by(id_column).limit(bindparam("list_limit"))
    return _ordered(stmt, id_column, bound, list(sort), cursor, backwards,
                    bindparam("list_limit"))


def _ordered(stmt: Any, id_column: Any, ranges: list[tuple[str, str, str, Any]],
             sort: list[tuple[str, str, bool]], cursor: Any, backwards: bool,
             limit: Any) -> Any:
    for param, name, op, bound in ranges:
        column = _column(id_column, name, param)
        stmt = stmt.where({"gte": column >= bound, "gt": column > bound,
                           "lte": column <= bound, "lt": column < bound}[op])
    keys = [(id_column if key == "id" else _column(id_column, name, "sort"), descending)
            for key, name, descending in sort]
    if not any(column is id_column for column, _ in keys):
        keys.append((id_column, False))
    if backwards:
        keys = [(column, not descending) for column, descending in keys]
    if cursor is not None:
        values = [cursor if column is id_column else _cursor_value(id_column, column, cursor)
                  for column, _ in keys]
        stmt = stmt.where(or_(*(
            and_(*(keys[j][0] == values[j] for j in range(i)),
                 keys[i][0] < values[i] if keys[i][1] else keys[i][0] > values[i])
            for i in range(len(keys)))))
    return stmt.order_by(*(c.desc() if d else c.asc() for c, d in keys)).limit(limit)


def _cursor_value(id_column: Any, column: Any, cursor: int) -> Any:
    """The sort key of the cursor's row. On an ORM column the session's tenant criteria
    scope it; on a Core column (a statement run on the bare connection) the cursor's row
    is looked up in the outer row's tenant, so another tenant's id names nothing."""
    if getattr(id_column, "class_", None) is not None or "tenant_id" not in id_column.table.c:
        return select(column).where(id_column == cursor).scalar_subquery()
    table = id_column.table
    inner = table.alias()
    return (select(inner.c[column.name])
            .where(inner.c[id_column.name] == cursor, inner.c.tenant_id == table.c.tenant_id)
            .correlate(table).scalar_subquery())


def in_order(items: list[Any]) -> tuple[list[Any], bool]:
    """A page's items in the list's order, and whether they were read backwards."""
    query = CURRENT.get()
    if query is not None and query.backwards:
        return items[::-1], True
    return items, False
