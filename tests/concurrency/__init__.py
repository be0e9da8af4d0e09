"""Helpers for concurrency tests on PostgreSQL (the fixtures are in ``conftest.py``).

SQLite runs one writer at a time and hides races, so every test under ``tests/concurrency``
runs on PostgreSQL only (``CARTERA_TEST_DATABASE_URL``) and is skipped on SQLite.

Two ways to make transactions meet:

- **forced interleaving**, to reproduce one exact race: open :class:`Backend` s (each one
  PostgreSQL connection with a tenant-scoped session; fixture ``backends``), run the first
  writer up to just before its commit, start the second as a task and let it run until it
  is done or waits for a lock (:func:`done_or_blocked`, which watches ``pg_stat_activity``),
  then commit the first and finish the second. The outcome is the same whatever the
  scheduling, so the test is deterministic.
- **storms**, to find races nobody thought of: many HTTP clients over the real app at once
  (fixture ``api_clients``), :func:`run_workers` running one random script per client, then
  invariants checked in SQL (:func:`money_invariant_violations`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

T = TypeVar("T")


@dataclass
class Backend:
    """One PostgreSQL connection (server process ``pid``) and a tenant-scoped ``session``
    bound to it. The session begins a transaction on first use; ``commit``/``rollback``
    end it and the next statement begins another on the same connection."""

    connection: AsyncConnection
    session: AsyncSession
    pid: int

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


async def is_waiting_for_lock(engine: AsyncEngine, pid: int) -> bool:
    """Whether server process ``pid`` is waiting for a lock (a row, a table or an advisory
    lock held by another transaction)."""
    async with engine.connect() as conn:
        kind = await conn.scalar(text(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
    return kind == "Lock"


async def done_or_blocked(task: asyncio.Task[Any], engine: AsyncEngine, pid: int, *,
                          within: float = 10.0) -> Literal["done", "blocked"]:
    """Wait until ``task`` (running statements on server process ``pid``) has finished or is
    waiting for a lock another transaction holds; which one happened. Fails after
    ``within`` seconds of neither."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if task.done():
            return "done"
        if await is_waiting_for_lock(engine, pid):
            return "blocked"
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {pid} neither finished nor waited for a lock in {within} s")


async def run_workers(workers: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run every worker at once (one asyncio task each) and return their results in order;
    the first exception is raised once all have ended."""
    results = await asyncio.gather(*(w() for w in workers), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)  # type: ignore[arg-type]


_EXPECTED_BALANCES = """
WITH by_obligation AS (
    SELECT obligation_id, SUM(amount_minor) AS s FROM allocations WHERE tenant_id = :t
    GROUP BY obligation_id
), by_payment AS (
    SELECT payment_id, SUM(amount_minor) AS s FROM allocations
    WHERE tenant_id = :t AND payment_id IS NOT NULL GROUP BY payment_id
), by_note AS (
    SELECT credit_note_id, SUM(amount_minor) AS s FROM allocations
    WHERE tenant_id = :t AND credit_note_id IS NOT NULL GROUP BY credit_note_id
), rows_ AS (
    SELECT o.debtor_id, o.currency,
           CASE WHEN o.kind <> 'credit_note' AND o.status IN ('open', 'disputed')
                THEN o.original_minor - o.prior_paid_minor - COALESCE(x.s, 0) ELSE 0 END
               AS outstanding,
           CASE WHEN o.kind = 'credit_note' AND o.status IN ('open', 'paid')
                THEN o.original_minor - o.prior_paid_minor - COALESCE(n.s, 0) ELSE 0 END
               AS credit
    FROM obligations o
    LEFT JOIN by_obligation x ON x.obligation_id = o.id
    LEFT JOIN by_note n ON n.credit_note_id = o.id
    WHERE o.tenant_id = :t AND o.status NOT IN ('cancelled', 'written_off')
    UNION ALL
    SELECT p.debtor_id, p.currency, 0, p.amount_minor - COALESCE(y.s, 0)
    FROM payments p LEFT JOIN by_payment y ON y.payment_id = p.id
    WHERE p.tenant_id = :t AND p.status = 'applied'
)
SELECT debtor_id, currency, SUM(outstanding), SUM(credit) FROM rows_
GROUP BY debtor_id, currency
"""

_OVER_ALLOCATED = {
    "payment allocated beyond its amount": """
        SELECT p.id FROM payments p JOIN allocations a ON a.payment_id = p.id
        WHERE p.tenant_id = :t GROUP BY p.id, p.amount_minor
        HAVING SUM(a.amount_minor) > p.amount_minor""",
    "reversed payment still allocated": """
        SELECT DISTINCT p.id FROM payments p JOIN allocations a ON a.payment_id = p.id
        WHERE p.tenant_id = :t AND p.status = 'reversed'""",
    "obligation allocated beyond its amount": """
        SELECT o.id FROM obligations o JOIN allocations a ON a.obligation_id = o.id
        WHERE o.tenant_id = :t GROUP BY o.id, o.original_minor, o.prior_paid_minor
        HAVING SUM(a.amount_minor) > o.original_minor - o.prior_paid_minor""",
    "credit note given beyond its amount": """
        SELECT o.id FROM obligations o JOIN allocations a ON a.credit_note_id = o.id
        WHERE o.tenant_id = :t GROUP BY o.id, o.original_minor, o.prior_paid_minor
        HAVING SUM(a.amount_minor) > o.original_minor - o.prior_paid_minor""",
    "allocation across currencies": """
        SELECT a.id FROM allocations a JOIN obligations o ON o.id = a.obligation_id
        WHERE a.tenant_id = :t AND (a.currency <> o.currency OR a.debtor_id <> o.debtor_id)""",
}


async def money_invariant_violations(engine: AsyncEngine, tenant_id: int) -> dict[str, Any]:
    """Every broken money invariant of the tenant, by name (empty when all hold), read from
    committed data: no payment, obligation or credit note allocated beyond its amount; no
    allocation on a reversed payment or across currencies or debtors; and the balance
    summary (``debtor_balances``) equal, per debtor and currency, to obligations minus
    their allocations (outstanding) and to unallocated payments and credit notes (credit)."""
    problems: dict[str, Any] = {}
    async with engine.connect() as conn:
        params = {"t": tenant_id}
        for name, sql in _OVER_ALLOCATED.items():
            ids = (await conn.execute(text(sql), params)).scalars().all()
            if ids:
                problems[name] = sorted(ids)
        expected = {(d, c): (int(o), int(cr)) for d, c, o, cr in
                    await conn.execute(text(_EXPECTED_BALANCES), params)}
        stored = {(d, c): (int(o), int(cr)) for d, c, o, cr in await conn.execute(text(
            "SELECT debtor_id, currency, outstanding_minor, unapplied_credit_minor "
            "FROM debtor_balances WHERE tenant_id = :t"), params)}
    wrong = {k: {"expected": expected.get(k), "stored": stored.get(k)}
             for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k)}
    if wrong:
        problems["balance summary differs from obligations minus allocations"] = wrong
    return problems
