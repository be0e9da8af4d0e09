"""Debtor documents (PostgreSQL): each debtor's JSON as the debtor list answers it, built
once and kept in ``debtor_docs`` until the debtor, a contact point, a related party or a tag
of it changes.

The contract, kept by the triggers of migration 0051 and by :func:`build_debtor_docs`:

* a debtor's ``body`` is NULL, or it is exactly what :func:`debtor_body` (the database
  function ``debtor_doc_body``) computes from the committed tables now (personal data
  sealed, as stored); a migration that changes the function's shape clears every body;
* any statement that changes one of those rows clears the body and bumps the stamp (a
  count of changes) of the debtor, in the same transaction; the builder locks the rows it
  builds and reads the tables once it holds them, so a change that commits later clears
  the body again: no body is ever older than the tables;
* the list (:func:`cartera.portfolio.reads._json_rows`) takes the body when there is one
  and computes :func:`debtor_body` when not: the answer is the same either way, only its
  cost differs.

Segment and stage are not in the body (segmentation moves the whole portfolio at once):
the list reads them with the page. SQLite has no triggers and no rows: its list computes every page.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import BigInteger, Text, any_, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.db.base import table_of
from cartera.jobs.registry import every_minute
from cartera.portfolio.models import Debtor, DebtorDoc

_d = Debtor.__table__.c
DOCS = table_of(DebtorDoc)
BATCH = 2_000
"""Debtors a builder statement takes (one short transaction each)."""
BUDGET_SECONDS = 10.0
"""How long one housekeeping pass builds before it leaves the rest to the next minute's
(the other housekeeping of the minute waits for it)."""

log = logging.getLogger("cartera.portfolio.documents")


def debtor_body() -> Any:
    """The JSON text of the outer ``debtors`` row as a
    :class:`~cartera.portfolio.schemas.DebtorOut` without ``segment`` and ``stage``: the
    database's ``debtor_doc_body`` (select it from a statement over ``debtors``)."""
    return func.debtor_doc_body(literal_column("debtors"), type_=Text)


async def build_debtor_docs(session: AsyncSession, batch: int = BATCH) -> tuple[int, bool]:
    """Build up to ``batch`` missing bodies (lowest debtor ids first) in the caller's
    transaction, which must commit it: how many were written, and whether none was left
    (``False``: call again). Nothing on SQLite.

    Two statements. The first locks the rows of missing bodies, skipping those a change
    holds (that change clears its body when it commits: no waiting behind a long import).
    The second builds them from a snapshot taken after the locks: it sees every change
    committed before, and a change not yet committed waits for the lock in its trigger,
    then clears the body again."""
    if (await session.connection()).dialect.name != "postgresql":
        return 0, True
    ids = await lock_missing(session, batch)
    if ids:
        await build_locked(session, ids)
    return len(ids), len(ids) < batch


async def lock_missing(session: AsyncSession, batch: int) -> list[int]:
    """Lock up to ``batch`` rows of missing bodies that no one else holds; their ids."""
    return list((await session.scalars(
        select(DOCS.c.debtor_id).where(DOCS.c.body.is_(None)).order_by(DOCS.c.debtor_id)
        .limit(batch).with_for_update(skip_locked=True))).all())


async def build_locked(session: AsyncSession, ids: list[int]) -> None:
    """Build the bodies of ``ids``, whose rows the caller's transaction has locked."""
    await session.execute(
        update(DOCS).where(DOCS.c.debtor_id == _d.id,
                           DOCS.c.debtor_id == any_(bindparam("ids", ids,
                                                              type_=ARRAY(BigInteger))))
        .values(body=debtor_body()))


async def build_missing(sessionmaker: async_sessionmaker[AsyncSession],
                        budget_seconds: float | None = None) -> int:
    """Build missing bodies one committed batch at a time, until none is left or
    ``budget_seconds`` have passed (None: no limit); how many were written."""
    started, total = time.monotonic(), 0
    while budget_seconds is None or time.monotonic() - started < budget_seconds:
        async with sessionmaker() as session:
            written, done = await build_debtor_docs(session)
            await session.commit()
        total += written
        if done:
            break
    return total


@every_minute
async def debtor_doc_housekeeping(sessionmaker: async_sessionmaker[AsyncSession],
                                  runner: Any) -> None:
    """Build missing debtor documents for up to :data:`BUDGET_SECONDS`; idempotent."""
    started = time.monotonic()
    total = await build_missing(sessionmaker, BUDGET_SECONDS)
    if total:
        log.info("built %d debtor documents in %.1f s", total, time.monotonic() - started)
