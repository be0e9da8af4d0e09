"""Debtor documents (PostgreSQL): each debtor's JSON as the debtor list answers it, built
once and kept in ``debtor_docs`` until the debtor, a contact point, a related party or a tag
of it changes.

The contract, kept by the triggers of migration 0051 and by :func:`build_debtor_docs`:

* a debtor's ``body`` is NULL, or it is exactly what :func:`debtor_body` (the database
  function ``debtor_doc_body``) computes from the committed tables now (personal data
  sealed, as stored); a migration that changes the function's shape clears every body;
* any statement that changes one of those rows clears the body and bumps the stamp of the
  debtor, in the same transaction; a builder writes a body only for the stamp it read, so
  a change committed after the builder's snapshot is never overwritten by a stale body;
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

from sqlalchemy import Text, func, literal_column, select, update
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


def _build_statement(batch: int) -> Any:
    todo = (select(DOCS.c.debtor_id, DOCS.c.stamp).where(DOCS.c.body.is_(None))
            .order_by(DOCS.c.debtor_id).limit(batch).cte("todo"))
    built = (select(todo.c.debtor_id, todo.c.stamp, debtor_body().label("body"))
             .select_from(Debtor.__table__.join(todo, todo.c.debtor_id == _d.id))
             .cte("built"))
    # A row changed since this statement's snapshot has a new stamp: PostgreSQL re-checks
    # the condition on the row's latest version (waiting for an open change to commit).
    return (update(DOCS).where(DOCS.c.debtor_id == built.c.debtor_id,
                               DOCS.c.stamp == built.c.stamp)
            .values(body=built.c.body))


async def build_debtor_docs(session: AsyncSession, batch: int = BATCH) -> tuple[int, bool]:
    """Build up to ``batch`` missing bodies (lowest debtor ids first) in one statement of
    the caller's transaction: how many were written, and whether that took every one that
    was missing at the statement's start (``False``: call again). Nothing on SQLite."""
    if (await session.connection()).dialect.name != "postgresql":
        return 0, True
    result: Any = await session.execute(_build_statement(batch))
    written = int(result.rowcount)
    # Fewer than a batch written: fewer were missing, or a change won the race for some
    # (those are missing again; the next pass takes them).
    return written, written < batch


@every_minute
async def debtor_doc_housekeeping(sessionmaker: async_sessionmaker[AsyncSession],
                                  runner: Any) -> None:
    """Build missing debtor documents, one committed batch at a time, for up to
    :data:`BUDGET_SECONDS`; idempotent."""
    started, total = time.monotonic(), 0
    while time.monotonic() - started < BUDGET_SECONDS:
        async with sessionmaker() as session:
            written, done = await build_debtor_docs(session)
            await session.commit()
        total += written
        if done:
            break
    if total:
        log.info("built %d debtor documents in %.1f s", total, time.monotonic() - started)
