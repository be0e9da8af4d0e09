"""``ETag`` on single-object reads and ``If-Match`` on their updates (412 on a stale write).

The entity tag is strong and opaque: the object's ``updated_at`` in microseconds, in hex
(``"5f0c1a2b3c4d5"``). Every conditional update moves ``updated_at`` (even one that changes
nothing else, so a tag never comes back) in the same statement that compares it:
``UPDATE ... SET updated_at = now WHERE id = :id AND updated_at IN (:tags)``. The row stays
locked until the request commits, so of two collectors who read the same version and write
with its tag, the second waits for the first and then gets 412 ``precondition_failed``
instead of overwriting it. ``If-Match: *`` and no ``If-Match`` at all write unconditionally.

Settings-style objects (one per tenant or per integration, replaced with ``PUT``, with
defaults before the first write) have no ``updated_at`` of their own: their tag is a digest
of their representation (:func:`content_etag`), and the ``PUT`` compares it under the
row's lock before it replaces anything (:func:`check_content`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Response
from litestar.params import Parameter
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.db.base import utcnow
from cartera.errors import CarteraError

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

IfMatch = Annotated[str | None, Parameter(
    header="If-Match", required=False, max_length=1000,
    description="Write only if the object's current `ETag` is one of these (comma-separated; "
                "`*`: any). A stale tag answers 412 `precondition_failed`.")]


class PreconditionFailed(CarteraError):
    status = 412
    code = "precondition_failed"
    title = "Precondition failed"


def etag(stamp: datetime) -> str:
    """The strong entity tag of an object last updated at ``stamp``."""
    return f'"{(stamp.astimezone(UTC) - EPOCH) // MICROSECOND:x}"'


def _stamps(if_match: str) -> list[datetime] | None:
    """The instants an ``If-Match`` names (None for ``*``); tags that are not ours name none."""
    stamps = []
    for tag in if_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return None
        tag = tag.removeprefix("W/")  # a weak comparison is not allowed; the tag is ours
        if len(tag) >= 3 and tag[0] == tag[-1] == '"':
            try:
                stamps.append(EPOCH + int(tag[1:-1], 16) * MICROSECOND)
            except (ValueError, OverflowError):
                continue
    return stamps


async def claim(session: AsyncSession, model: Any, if_match: str | None,
                *where: ColumnElement[bool]) -> None:
    """Before a conditional update of the one ``model`` row ``where`` names: compare its tag
    with ``If-Match`` and move ``updated_at``, in one statement. A missing row is left to the
    update to answer (404)."""
    if if_match is None:
        return
    stamps = _stamps(if_match)
    if stamps is None:
        return
    scope = (*where, model.tenant_id == session.info["tenant_id"])
    if stamps:
        result: Any = await session.execute(
            update(model).where(*scope, model.updated_at.in_(stamps))
            .values(updated_at=utcnow()).execution_options(synchronize_session=False))
        if result.rowcount:
            return
    if await session.scalar(select(model.id).where(*scope)) is not None:
        raise PreconditionFailed("the object changed since you read it (its ETag is not "
                                 "If-Match): read it again and reapply your change",
                                 param="If-Match")


async def tagged(session: AsyncSession, model: Any, content: T, *where: ColumnElement[bool],
                 status_code: int = 200) -> Response[T]:
    """``content`` with the ETag of the ``model`` row ``where`` names, read now."""
    scope = (*where, model.tenant_id == session.info["tenant_id"])
    stamp = await session.scalar(select(model.updated_at).where(*scope))
    return with_etag(content, stamp, status_code)


def with_etag(content: T, stamp: datetime | None, status_code: int = 200) -> Response[T]:
    headers = {"ETag": etag(stamp)} if stamp is not None else None
    return Response(content, headers=headers, status_code=status_code)


def content_etag(content: Any) -> str:
    """The strong entity tag of a representation: a digest of its JSON."""
    return f'"{hashlib.sha256(msgspec.json.encode(content)).hexdigest()[:32]}"'


def check_content(if_match: str | None, current: Any) -> None:
    """412 ``precondition_failed`` unless ``If-Match`` is absent, ``*`` or names the tag of
    ``current``, the object as it is now (read under the lock of the write that follows)."""
    if if_match is None:
        return
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" in tags or content_etag(current) in tags:
        return
    raise PreconditionFailed("the object changed since you read it (its ETag is not "
                             "If-Match): read it again and reapply your change",
                             param="If-Match")


def with_content_etag(content: T, status_code: int = 200) -> Response[T]:
    """``content`` with its :func:`content_etag`."""
    return Response(content, headers={"ETag": content_etag(content)}, status_code=status_code)
