"""The per-debtor, per-currency balance summary as of a date, as a selectable: what reads
(balances, explain, stages, preview, brackets) use instead of rebuilding ``debtor_balances``.

``debtor_balances`` holds the summary as of the day it was written (its ``as_of``). Only
``overdue_minor`` and ``next_due_date`` depend on that day, so a stored row is exact for
another day ``A`` unless an open, unpaid due date lies between its ``as_of`` and ``A``:

* ``A`` later: the row's ``next_due_date`` (its first unpaid due date on or after its
  ``as_of``) is before ``A``;
* ``A`` earlier: anything may have fallen due in between, so the row is stale.

:func:`stale` is that condition; :func:`as_of` keeps the fresh stored rows and computes the
stale debtors' rows from the obligations and payments, writing nothing. :func:`computed` is
the same statement as ``INSERT INTO debtor_balances ... SELECT`` in
:mod:`cartera.payments.allocation`, in SQLAlchemy Core
(``tests/portfolio/test_summary.py`` checks that the two agree).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from cartera.payments.models import Payment
from cartera.portfolio.models import DebtorBalance, Obligation

Debtors = int | tuple[int, int] | BindParameter[Any] | None
"""Which debtors a statement covers: one id, the ids in ``[low, high)``, all (None), or the
one id a bound parameter gives at execution (a statement built once, run for many)."""


def only(col: Any, debtors: Debtors) -> list[ColumnElement[bool]]:
    """The conditions limiting the debtor id ``col`` to ``debtors``."""
    if debtors is None:
        return []
    if isinstance(debtors, (int, BindParameter)):
        return [col == debtors]
    return [col >= debtors[0], col < debtors[1]]


def stale(bt: Any, day: date) -> ColumnElement[bool]:
    """The stored summary row ``bt`` is not exact as of ``day`` (see the module doc)."""
    return or_(bt.c.as_of > day,
               and_(bt.c.next_due_date.is_not(None), bt.c.next_due_date < day))


def computed(tenant_id: int, day: date, debtors: Debtors = None,
             within: Any = None) -> Any:
    """The summary rows as of ``day`` straight from the obligations and payments of
    ``debtors`` (and, with ``within``, only of the debtor ids it selects)."""
    o, p = Obligation.__table__, Payment.__table__
    debt = o.c.kind != "credit_note"
    unpaid = and_(debt, o.c.status == "open", o.c.outstanding_minor > 0)
    amount = o.c.outstanding_minor

    def scope(col: Any) -> list[ColumnElement[bool]]:
        return [*only(col, debtors), *([col.in_(within)] if within is not None else [])]

    rows = union_all(
        select(o.c.debtor_id, o.c.currency,
               case((and_(debt, o.c.status.in_(("open", "disputed"))), amount),
                    else_=0).label("outstanding"),
               case((and_(debt, o.c.status == "open", o.c.due_date < day), amount),
                    else_=0).label("overdue"),
               case((and_(~debt, o.c.status.in_(("open", "paid"))), amount),
                    else_=0).label("credit"),
               case((unpaid, 1), else_=0).label("open_count"),
               case((unpaid, o.c.due_date)).label("unpaid_due"),
               case((and_(unpaid, o.c.due_date >= day), o.c.due_date)).label("upcoming_due"),
               cast(null(), Date).label("paid_on"))
        .where(o.c.tenant_id == tenant_id, o.c.status.not_in(("cancelled", "written_off")),
               *scope(o.c.debtor_id)),
        select(p.c.debtor_id, p.c.currency, literal(0, BigInteger), literal(0, BigInteger),
               p.c.unapplied_minor, literal(0, Integer), cast(null(), Date),
               cast(null(), Date), p.c.paid_on)
        .where(p.c.tenant_id == tenant_id, p.c.status == "applied", *scope(p.c.debtor_id)),
    ).subquery("rows_")
    r = rows.c
    cols = {"debtor_id": r.debtor_id, "currency": r.currency,
            "outstanding_minor": cast(func.sum(r.outstanding), BigInteger),
            "overdue_minor": cast(func.sum(r.overdue), BigInteger),
            "unapplied_credit_minor": cast(func.sum(r.credit), BigInteger),
            "open_count": cast(func.sum(r.open_count), Integer),
            "oldest_unpaid_due_date": func.min(r.unpaid_due),
            "next_due_date": func.min(r.upcoming_due),
            "last_payment_date": func.max(r.paid_on),
            "as_of": literal(day, Date), "tenant_id": literal(tenant_id, BigInteger)}
    # In the column order of ``debtor_balances``, so that the two can be unioned.
    return (select(*[cols[c.key].label(c.key) for c in DebtorBalance.__table__.c])
            .group_by(r.debtor_id, r.currency))


async def as_of(session: AsyncSession, tenant_id: int, day: date,
                debtors: Debtors = None) -> Any:
    """The summary of ``debtors`` as of ``day``, with the columns of ``debtor_balances``:
    the table itself when every stored row is exact for ``day`` (the usual case for today:
    one look for a stale row, then the plain index scans of the stored summary), else
    :func:`mixed` (none is written)."""
    s = DebtorBalance.__table__
    any_stale = await session.scalar(select(exists().where(
        s.c.tenant_id == tenant_id, stale(s, day), *only(s.c.debtor_id, debtors))))
    return mixed(tenant_id, day, debtors) if any_stale else s


def mixed(tenant_id: int, day: date, debtors: Debtors = None) -> Any:
    """The stored rows of the debtors whose summary is exact for ``day``, and the others'
    computed."""
    bt, s = DebtorBalance.__table__, DebtorBalance.__table__.alias("s")
    stale_ids = select(s.c.debtor_id).where(s.c.tenant_id == tenant_id, stale(s, day),
                                            *only(s.c.debtor_id, debtors))
    kept = select(*bt.c).where(
        bt.c.tenant_id == tenant_id, *only(bt.c.debtor_id, debtors),
        ~exists().where(s.c.tenant_id == tenant_id, s.c.debtor_id == bt.c.debtor_id,
                        stale(s, day)))
    return union_all(kept, computed(tenant_id, day, debtors, within=stale_ids)).subquery("bt")
