"""Database plumbing: the declarative base, engines, sessions and migrations."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from cartera.errors import NotFound


class _Owned(Protocol):
    @property
    def tenant_id(self) -> Any: ...


Row = TypeVar("Row", bound=_Owned)


async def get_owned(session: AsyncSession, model: type[Row], row_id: Any,
                    tenant_id: int | None, *, what: str, **options: Any) -> Row:
    """The tenant's ``model`` row ``row_id``, else :class:`NotFound` ``"{what} {row_id} not
    found"``: another tenant's row is as absent as one that does not exist.

    ``options`` go to :meth:`AsyncSession.get` (``with_for_update``, ``populate_existing``,
    ``options``)."""
    row = await session.get(model, row_id, **options)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"{what} {row_id} not found")
    return row
