"""The money lock: every write that moves a debtor's money holds it until its transaction ends.

A money write is anything that changes what :func:`cartera.payments.allocation.rebalance`
reads: a payment or its reversal, an obligation created or changed, an import's rebalance,
a provider's payment webhook. Allocation deletes and re-derives the debtor's automatic
allocations from what it reads, so two writers for one debtor that read before either
commits both allocate the same debt (or the same payment) and both commit.

Two levels, always taken in this order (tenant, then debtors by ascending id), so writers
cannot deadlock on them:

- **tenant**: a transaction-scoped advisory lock on ("money", tenant id). Writers of a few
  debtors hold it *shared*, so they run side by side; a bulk rebalance (an import, a demo
  load: a scope given as SQL over up to the whole tenant) holds it *exclusive*, which waits
  for every in-flight writer of the tenant and holds new ones back until it commits. That
  is one lock where locking each debtor's row would write hundreds of thousands of them.
- **debtor**: the debtor's row, ``FOR NO KEY UPDATE``. That mode excludes itself (two writers
  of one debtor run one after the other, and so does an update of the debtor's own row) and
  ``FOR UPDATE`` (deleting the debtor waits), but not ``FOR KEY SHARE``, which is what the
  foreign-key check takes when another transaction inserts a row that refers to the debtor
  (an interaction, a contact point): those never wait for a money write. A row lock needs
  no key encoding and is released with the transaction like the advisory lock.

A refresh of one debtor's summary takes only their row (:func:`lock_debtor_rows`): it may
come after its transaction updated the debtor's row, and a tenant lock requested then would
queue behind a bulk rebalance that waits for a writer that waits for that row (a cycle
PostgreSQL's deadlock check only untangles after ``deadlock_timeout``).

Transactions run at READ COMMITTED, where every statement reads what was committed when it
started: a writer that takes the lock *before reading anything the allocation depends on*
sees everything the writer before it committed. Taking it again in the same transaction
never waits, so the locks a transaction holds are remembered (:func:`held`) and not
requested again: a payment's chain (the write, the balances, the summary, the placement, the
replan) locks the debtor once. A lock taken inside a savepoint is forgotten when the
savepoint ends (rolled back, PostgreSQL releases it; released, it is simply taken again).
SQLite has one writer at a time and needs none of this: there these functions do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from cartera.errors import NotFound
from cartera.portfolio.models import Debtor

MONEY_LOCK_SPACE = 0x30E7
"""The first key of the two-key advisory lock ("money"); the second is the tenant id."""


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_HELD = "cartera.locks.held"
"""``session.info`` key: [(transaction, {lock key})] of the locks taken in the session."""


def _current(session: AsyncSession) -> SessionTransaction | None:
    sync = session.sync_session
    return sync.get_nested_transaction() or sync.get_transaction()


def _live(session: AsyncSession) -> set[tuple[Any, ...]]:
    """The keys of the locks the current transaction holds (see :func:`held`); forgets
    those of transactions and savepoints that have ended."""
    entries: list[tuple[SessionTransaction, set[tuple[Any, ...]]]] = session.info.get(_HELD, [])
    if not entries:
        return set()
    chain: list[SessionTransaction] = []
    tx = _current(session)
    while tx is not None:
        chain.append(tx)
        tx = tx.parent
    live = [(t, keys) for t, keys in entries if any(t is c for c in chain)]
    session.info[_HELD] = live
    return set().union(*(keys for _, keys in live))


def held(session: AsyncSession, key: tuple[Any, ...]) -> bool:
    """Whether the session's current transaction holds the lock ``key`` (``("money",
    tenant_id)`` shared, ``("debtor", debtor_id)`` ``FOR NO KEY UPDATE``): taken by it or by
    a transaction it is nested in, with no savepoint since ended in between."""
    return key in _live(session)


def remember(session: AsyncSession, keys: Iterable[tuple[Any, ...]]) -> None:
    """Record locks just taken in the session's current transaction (see :func:`held`)."""
    tx = _current(session)
    if tx is None:
        return
    entries: list[tuple[SessionTransaction, set[tuple[Any, ...]]]] = session.info.setdefault(
        _HELD, [])
    for t, existing in entries:
        if t is tx:
            existing.update(keys)
            return
    entries.append((tx, set(keys)))


async def lock_debtors(session: AsyncSession, tenant_id: int, debtor_ids: Iterable[int]) -> None:
    """Before a money write for these debtors: hold the tenant's money lock shared and each
    debtor's row ``FOR NO KEY UPDATE``, in ascending id order, until the transaction ends.
    Call it first, before reading the debtors' obligations, payments or allocations.

    Raises :class:`~cartera.errors.NotFound` for a debtor deleted by a transaction that
    committed while this one waited."""
    if not _postgresql(session):
        return
    if not held(session, ("money", tenant_id)):
        await session.execute(text("SELECT pg_advisory_xact_lock_shared(:space, :tenant)"),
                              {"space": MONEY_LOCK_SPACE, "tenant": tenant_id})
        remember(session, [("money", tenant_id)])
    await lock_debtor_rows(session, debtor_ids)


async def lock_debtor_rows(session: AsyncSession, debtor_ids: Iterable[int]) -> None:
    """The debtor level of :func:`lock_debtors` alone, for a refresh of their summary: it
    may run after its transaction changed the debtor's row (a profile update re-segments
    them), and taking the tenant lock after a row would invert the order. Same errors."""
    if not _postgresql(session):
        return
    live = _live(session)
    ids = [i for i in sorted(set(debtor_ids)) if ("debtor", i) not in live]
    if not ids:
        return
    # The sort runs below the row locking: rows are locked in id order.
    locked = set((await session.scalars(
        select(Debtor.id).where(Debtor.id.in_(ids)).order_by(Debtor.id)
        .with_for_update(key_share=True))).all())
    for missing in sorted(set(ids) - locked):
        raise NotFound(f"debtor {missing} not found")
    remember(session, [("debtor", i) for i in ids])


async def lock_tenant_money(session: AsyncSession, tenant_id: int) -> None:
    """Before a bulk money write (a rebalance of a scope given as SQL): hold the tenant's
    money lock exclusive until the transaction ends; no debtor row is locked."""
    if _postgresql(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:space, :tenant)"),
                              {"space": MONEY_LOCK_SPACE, "tenant": tenant_id})
