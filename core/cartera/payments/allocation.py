"""Set-based allocation of credits to obligations, and the balance summary.

For a set of debtors (one, an import's, or a whole tenant) :func:`rebalance` recomputes, in
SQL over the whole set at once:

1. the automatic allocations: every credit (an applied payment or a credit note) is spent on
   the debtor's open obligations of the same currency, oldest due first, after the explicit
   allocations the payer chose. The matching is the overlap of two running totals (debits
   ordered by due date, credits by date), so it needs no per-row loop;
2. each obligation's outstanding amount and open/paid status;
3. each payment's unapplied remainder (a ``held`` payment, not matched to the debt, is all
   unapplied credit; what was refunded of a payment is not applied);
4. the per-debtor, per-currency balance summary (:class:`DebtorBalance`).

Disputed, written-off and cancelled obligations take no automatic allocation.

:func:`rebalance` first takes the money lock of its scope (:mod:`cartera.payments.locks`):
a single debtor's, or the tenant's exclusive one for a scope given as SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Boolean, Date, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes
from cartera.portfolio.locks import lock_debtor_rows, lock_debtors, lock_tenant_money


@dataclass(frozen=True)
class DebtorScope:
    """A SQL sub-select yielding debtor ids, with its parameters (always tenant-filtered);
    ``debtor_id`` when it is one debtor."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    debtor_id: int | None = None

    @staticmethod
    def one(tenant_id: int, debtor_id: int) -> DebtorScope:
        return DebtorScope("SELECT :scope_debtor", {"scope_debtor": debtor_id}, debtor_id)

    @staticmethod
    def tenant(tenant_id: int) -> DebtorScope:
        return DebtorScope("SELECT id FROM debtors WHERE tenant_id = :t", {})

    @staticmethod
    def stale(tenant_id: int) -> DebtorScope:
        """Debtors whose summary is not exact as of ``:as_of``: computed as of a later day,
        or a due date has passed since the day it was computed (the condition of
        :func:`cartera.portfolio.summary.stale`)."""
        return DebtorScope(
            "SELECT DISTINCT debtor_id FROM debtor_balances WHERE tenant_id = :t "
            "AND (as_of > :as_of OR (next_due_date IS NOT NULL AND next_due_date < :as_of))",
            {},
        )


_DELETE_AUTO = """
DELETE FROM allocations
WHERE tenant_id = :t AND explicit = :false AND debtor_id IN ({scope})
"""

_INSERT_AUTO = """
WITH explicit_by_obligation AS (
    SELECT obligation_id, SUM(amount_minor) AS amt FROM allocations
    WHERE tenant_id = :t AND explicit = :true AND debtor_id IN ({scope})
    GROUP BY obligation_id
), explicit_by_payment AS (
    SELECT payment_id, SUM(amount_minor) AS amt FROM allocations
    WHERE tenant_id = :t AND explicit = :true AND payment_id IS NOT NULL
      AND debtor_id IN ({scope})
    GROUP BY payment_id
), explicit_by_note AS (
    SELECT credit_note_id, SUM(amount_minor) AS amt FROM allocations
    WHERE tenant_id = :t AND explicit = :true AND credit_note_id IS NOT NULL
      AND debtor_id IN ({scope})
    GROUP BY credit_note_id
), debits AS (
    SELECT o.id, o.debtor_id, o.currency, o.due_date,
           o.original_minor - o.prior_paid_minor - COALESCE(x.amt, 0) AS remaining
    FROM obligations o
    LEFT JOIN explicit_by_obligation x ON x.obligation_id = o.id
    WHERE o.tenant_id = :t AND o.debtor_id IN ({scope})
      AND o.kind <> 'credit_note' AND o.status IN ('open', 'paid')
), debits_run AS (
    SELECT id, debtor_id, currency, remaining,
           SUM(remaining) OVER (PARTITION BY debtor_id, currency ORDER BY due_date, id)
               AS run_end
    FROM debits WHERE remaining > 0
), credits AS (
    SELECT p.id AS payment_id, NULL AS credit_note_id, p.debtor_id, p.currency,
           p.paid_on AS credit_date, 0 AS source_order, p.id AS source_id,
           p.amount_minor - p.refunded_minor - COALESCE(x.amt, 0) AS remaining
    FROM payments p
    LEFT JOIN explicit_by_payment x ON x.payment_id = p.id
    WHERE p.tenant_id = :t AND p.debtor_id IN ({scope}) AND p.status = 'applied'
    UNION ALL
    SELECT NULL, o.id, o.debtor_id, o.currency, COALESCE(o.issue_date, o.due_date), 1, o.id,
           o.original_minor - o.prior_paid_minor - COALESCE(x.amt, 0)
    FROM obligations o
    LEFT JOIN explicit_by_note x ON x.credit_note_id = o.id
    WHERE o.tenant_id = :t AND o.debtor_id IN ({scope})
      AND o.kind = 'credit_note' AND o.status IN ('open', 'paid')
), credits_run AS (
    SELECT payment_id, credit_note_id, debtor_id, currency, remaining,
           SUM(remaining) OVER (PARTITION BY debtor_id, currency
                                ORDER BY credit_date, source_order, source_id) AS run_end
    FROM credits WHERE remaining > 0
)
INSERT INTO allocations
    (tenant_id, debtor_id, currency, obligation_id, payment_id, credit_note_id, amount_minor,
     explicit)
SELECT :t, d.debtor_id, d.currency, d.id, c.payment_id, c.credit_note_id,
       (CASE WHEN d.run_end < c.run_end THEN d.run_end ELSE c.run_end END)
     - (CASE WHEN d.run_end - d.remaining > c.run_end - c.remaining
             THEN d.run_end - d.remaining ELSE c.run_end - c.remaining END),
       :false
FROM debits_run d
JOIN credits_run c ON c.debtor_id = d.debtor_id AND c.currency = d.currency
 AND c.run_end - c.remaining < d.run_end AND d.run_end - d.remaining < c.run_end
"""

_UPDATE_OBLIGATIONS = """
UPDATE obligations SET
    outstanding_minor = agg.outstanding,
    status = CASE WHEN obligations.status IN ('open', 'paid')
                  THEN CASE WHEN agg.outstanding = 0 THEN 'paid' ELSE 'open' END
                  ELSE obligations.status END
FROM (
    -- Two indexed joins (what was paid on a debt; what a credit note has given) instead of
    -- one join on a CASE, which no index can serve.
    SELECT o.id,
           o.original_minor - o.prior_paid_minor - COALESCE(SUM(a.amount_minor), 0)
               AS outstanding
    FROM obligations o
    LEFT JOIN allocations a ON a.obligation_id = o.id
    WHERE o.tenant_id = :t AND o.debtor_id IN ({scope}) AND o.kind <> 'credit_note'
    GROUP BY o.id, o.original_minor, o.prior_paid_minor
    UNION ALL
    SELECT o.id,
           o.original_minor - o.prior_paid_minor - COALESCE(SUM(a.amount_minor), 0)
    FROM obligations o
    LEFT JOIN allocations a ON a.credit_note_id = o.id
    WHERE o.tenant_id = :t AND o.debtor_id IN ({scope}) AND o.kind = 'credit_note'
    GROUP BY o.id, o.original_minor, o.prior_paid_minor
) AS agg
WHERE obligations.id = agg.id
  AND (obligations.outstanding_minor <> agg.outstanding
       OR obligations.status = CASE WHEN agg.outstanding = 0 THEN 'open' ELSE 'paid' END)
"""

_HAS_CREDITS = """
SELECT EXISTS (SELECT 1 FROM payments
               WHERE tenant_id = :t AND debtor_id IN ({scope}))
    OR EXISTS (SELECT 1 FROM obligations
               WHERE tenant_id = :t AND kind = 'credit_note' AND debtor_id IN ({scope}))
    OR EXISTS (SELECT 1 FROM allocations WHERE tenant_id = :t AND debtor_id IN ({scope}))
"""

# Without payments, credit notes or allocations, what is owed is what was borrowed.
_UPDATE_UNCREDITED_OBLIGATIONS = """
UPDATE obligations SET
    outstanding_minor = original_minor - prior_paid_minor,
    status = CASE WHEN status IN ('open', 'paid')
                  THEN CASE WHEN original_minor = prior_paid_minor THEN 'paid' ELSE 'open' END
                  ELSE status END
WHERE tenant_id = :t AND debtor_id IN ({scope})
  AND (outstanding_minor <> original_minor - prior_paid_minor
       OR status = CASE WHEN original_minor = prior_paid_minor THEN 'open' ELSE 'paid' END)
"""

_UPDATE_PAYMENTS = """
UPDATE payments SET unapplied_minor = agg.unapplied
FROM (
    SELECT p.id, CASE WHEN p.status IN ('applied', 'held')
                      THEN p.amount_minor - p.refunded_minor - COALESCE(SUM(a.amount_minor), 0)
                      ELSE 0 END
               AS unapplied
    FROM payments p LEFT JOIN allocations a ON a.payment_id = p.id
    WHERE p.tenant_id = :t AND p.debtor_id IN ({scope})
    GROUP BY p.id, p.amount_minor, p.refunded_minor, p.status
) AS agg
WHERE payments.id = agg.id AND payments.unapplied_minor <> agg.unapplied
"""

_DELETE_BALANCES = "DELETE FROM debtor_balances WHERE tenant_id = :t AND debtor_id IN ({scope})"

# An upsert: a concurrent refresh (one that does not hold the money lock, as a segmentation
# run's of the stale summaries) may have inserted the row since this one's DELETE.
_INSERT_BALANCES = """
INSERT INTO debtor_balances
    (tenant_id, debtor_id, currency, outstanding_minor, overdue_minor, unapplied_credit_minor,
     open_count, oldest_unpaid_due_date, next_due_date, last_payment_date, as_of)
SELECT :t, debtor_id, currency, SUM(outstanding), SUM(overdue), SUM(credit), SUM(open_count),
       MIN(unpaid_due), MIN(upcoming_due), MAX(paid_on), :as_of
FROM (
    SELECT debtor_id, currency,
           CASE WHEN kind <> 'credit_note' AND status IN ('open', 'disputed')
                THEN outstanding_minor ELSE 0 END AS outstanding,
           CASE WHEN kind <> 'credit_note' AND status = 'open' AND due_date < :as_of
                THEN outstanding_minor ELSE 0 END AS overdue,
           CASE WHEN kind = 'credit_note' AND status IN ('open', 'paid')
                THEN outstanding_minor ELSE 0 END AS credit,
           CASE WHEN kind <> 'credit_note' AND status = 'open' AND outstanding_minor > 0
                THEN 1 ELSE 0 END AS open_count,
           CASE WHEN kind <> 'credit_note' AND status = 'open' AND outstanding_minor > 0
                THEN due_date END AS unpaid_due,
           CASE WHEN kind <> 'credit_note' AND status = 'open' AND outstanding_minor > 0
                 AND due_date >= :as_of THEN due_date END AS upcoming_due,
           NULL AS paid_on
    FROM obligations
    WHERE tenant_id = :t AND debtor_id IN ({scope}) AND status <> 'cancelled'
      AND status <> 'written_off'
    UNION ALL
    SELECT debtor_id, currency, 0, 0, unapplied_minor, 0, NULL, NULL, paid_on
    FROM payments
    WHERE tenant_id = :t AND debtor_id IN ({scope}) AND status IN ('applied', 'held')
) AS rows_
GROUP BY debtor_id, currency
ON CONFLICT (debtor_id, currency) DO UPDATE SET
    tenant_id = excluded.tenant_id, outstanding_minor = excluded.outstanding_minor,
    overdue_minor = excluded.overdue_minor,
    unapplied_credit_minor = excluded.unapplied_credit_minor,
    open_count = excluded.open_count, oldest_unpaid_due_date = excluded.oldest_unpaid_due_date,
    next_due_date = excluded.next_due_date, last_payment_date = excluded.last_payment_date,
    as_of = excluded.as_of
"""

_BINDS = (
    bindparam("true", type_=Boolean),
    bindparam("false", type_=Boolean),
)


async def _run(session: AsyncSession, sql: str, scope: DebtorScope, **params: Any) -> Any:
    stmt = text(sql.format(scope=scope.sql))
    names = set(stmt.compile().params)
    binds: list[Any] = [b for b in _BINDS if b.key in names]
    if "as_of" in names:
        binds.append(bindparam("as_of", type_=Date))
    values = {"true": True, "false": False, **scope.params, **params}
    return await session.execute(stmt.bindparams(*binds),
                                 {k: v for k, v in values.items() if k in names})


async def lock_scope(session: AsyncSession, tenant_id: int, scope: DebtorScope) -> None:
    """The money lock for a write over ``scope``: its debtor's for one debtor, else the
    tenant's exclusive one (see :mod:`cartera.payments.locks`)."""
    if scope.debtor_id is not None:
        await lock_debtors(session, tenant_id, [scope.debtor_id])
    else:
        await lock_tenant_money(session, tenant_id)


async def rebalance(session: AsyncSession, tenant_id: int, scope: DebtorScope, as_of: date,
                    *, credits: bool = False) -> None:
    """Recompute allocations, outstanding amounts, statuses and summaries for ``scope``,
    under its money lock (:func:`lock_scope`; a caller that read the debtors' money before
    must have taken it before that read). ``credits``: the caller knows the scope has a
    payment (it just recorded one), so the check for one is skipped."""
    await lock_scope(session, tenant_id, scope)
    if not credits and not (await _run(session, _HAS_CREDITS, scope, t=tenant_id)).scalar():
        # Nothing to allocate (say, a first load of debts): skip the running-sum matching.
        await _run(session, _UPDATE_UNCREDITED_OBLIGATIONS, scope, t=tenant_id)
        await refresh_balances(session, tenant_id, scope, as_of)
        return
    await _run(session, _DELETE_AUTO, scope, t=tenant_id)
    await _run(session, _INSERT_AUTO, scope, t=tenant_id)
    await _run(session, _UPDATE_OBLIGATIONS, scope, t=tenant_id)
    await _run(session, _UPDATE_PAYMENTS, scope, t=tenant_id)
    await refresh_balances(session, tenant_id, scope, as_of)


async def refresh_balances(
    session: AsyncSession, tenant_id: int, scope: DebtorScope, as_of: date
) -> None:
    """Rebuild only the balance summary (amounts are already current) for ``scope``.

    One debtor's refresh takes their row lock (:func:`lock_debtor_rows`: a change to their
    profile re-segments them while a money write may be under way). A refresh of many (a
    run's stale summaries) takes none: each debtor in it has summary rows, so of two
    refreshes of one debtor the later one's DELETE waits for the earlier one's commit, its
    INSERT then reads what that committed, and the upsert replaces the rows the earlier one
    inserted."""
    if scope.debtor_id is not None:
        await lock_debtor_rows(session, [scope.debtor_id])
    if "as_of" in scope.sql:
        # A scope that reads the summary itself must be materialised before we delete from it.
        ids = (await session.execute(
            text(scope.sql).bindparams(bindparam("as_of", type_=Date)),
            {"t": tenant_id, "as_of": as_of, **scope.params},
        )).scalars().all()
        if not ids:
            return
        scope = DebtorScope(",".join(str(int(i)) for i in ids))
    await _run(session, _DELETE_BALANCES, scope, t=tenant_id)
    await _run(session, _INSERT_BALANCES, scope, t=tenant_id, as_of=as_of)


@changes.step("balances")
async def rederive_balances(session: AsyncSession, change: changes.Change) -> None:
    """The chain's first step: after a money change, re-allocate and re-summarise the
    debtor (the other changes leave their amounts as they are)."""
    if change.money and change.debtor_id is not None:
        await rebalance(session, change.tenant_id,
                        DebtorScope.one(change.tenant_id, change.debtor_id), change.today,
                        credits=change.kind == "payment")
