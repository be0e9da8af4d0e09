"""One place for "this debtor changed": the re-derivation chain every write path calls.

A write that touches a debtor (a payment or its reversal, an obligation, a promise made
or broken, an installment plan, their profile or contact points, an inbound reply, an
opt-out, a delivery failure) calls :func:`debtor_changed` in its own transaction, last.
The chain then re-derives, in this order and in that same transaction, what depends on it:

0. ``offers``     — an offer paid in full gets its credit note, before the allocation (offers);
1. ``balances``   — allocations, outstanding amounts and the balance summary (payments);
2. ``promises``   — promises and installment plans kept or broken (negotiation);
3. ``placements`` — stage and segment (segmentation);
4. ``plan``       — strategy enrollment and the debtor's next actions (strategies).

Each domain contributes its step with :func:`step` (the name fixes its place in
:data:`ORDER`). This module imports no domain: the domains below (portfolio, payments,
negotiation) call it without importing the domains above them, and the steps are loaded
by name from :data:`STEP_MODULES`, as :mod:`cartera.jobs.catalog` loads job handlers.
``tests/test_architecture.py`` keeps the layering (:data:`LAYERS`) honest.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.tenants.models import Tenant

ORDER = ("offers", "balances", "promises", "placements", "plan")
"""The chain's steps, in the order they run."""

STEP_MODULES = (
    "cartera.offers.service",
    "cartera.payments.allocation",
    "cartera.negotiation.status",
    "cartera.segmentation.service",
    "cartera.strategies.replan",
)
"""The modules that register the steps of :data:`ORDER` (one each, in that order)."""

LAYERS = ("portfolio", "payments", "negotiation", "messaging", "offers", "segmentation",
          "strategies")
"""The domains, lowest first: a domain calls nothing of those after it (it may read their
tables, their ``models``). Messaging sits below segmentation: the rules read contact
kinds and consent; a reply or an opt-out re-segments through this chain. Offers read the
country packs the gate uses (legal caps); their step runs first in the chain all the same,
loaded by name."""

MONEY = frozenset({"payment", "reversal", "obligation"})
"""Changes to the debtor's money: the balances are recomputed under the money lock."""
SETTLE = MONEY | {"promise_made", "arrangement_made"}
"""Changes after which promises and plans are re-derived."""
KINDS = SETTLE | {"promise_broken", "promise_settled", "promise_cancelled",
                  "arrangement_cancelled", "debtor", "contact_point", "reply", "opt_out",
                  "delivery_failure", "placement", "deleted", "import"}
"""Every kind of change. ``deleted``: the debtor is about to be deleted in the caller's
transaction (each step removes what it keeps of them that nothing cascades to).
``import``: a bulk load (an import, an ERP sync) changed many debtors
(:func:`debtors_changed`)."""

AFTER_LOAD = ("placements", "plan")
"""The steps a bulk load leaves to the chain: it recomputes balances and settles promises
and plans itself, set-based (:func:`cartera.payments.allocation.rebalance`,
:func:`cartera.negotiation.status.settle_debtors`)."""


@dataclass(frozen=True)
class Change:
    """What changed for which debtor, and the tenant's business day and instant of it."""

    tenant_id: int
    debtor_id: int | None
    """None: many of the tenant's debtors changed (:func:`tenant_changed`)."""
    kind: str
    today: date
    now: datetime
    within: tuple[int, int] | None = None
    """With ``debtor_id`` None: the debtor ids ``[low, high)`` that span those a bulk load
    changed (:func:`debtors_changed`); None: any of the tenant's."""

    @property
    def money(self) -> bool:
        return self.kind in MONEY

    @property
    def settle(self) -> bool:
        return self.kind in SETTLE


Step = Callable[[AsyncSession, Change], Awaitable[None]]
_steps: dict[str, Step] = {}


def step(name: str) -> Callable[[Step], Step]:
    """Register the domain's step ``name`` (one of :data:`ORDER`) of the chain."""
    if name not in ORDER:
        raise ValueError(f"unknown step {name!r}; the chain's steps are {ORDER}")

    def register(fn: Step) -> Step:
        _steps[name] = fn
        return fn

    return register


def steps() -> list[Step]:
    """The registered steps in :data:`ORDER`, loading their modules the first time."""
    if len(_steps) < len(ORDER):
        for module in STEP_MODULES:
            importlib.import_module(module)
    missing = [name for name in ORDER if name not in _steps]
    if missing:
        raise RuntimeError(f"the chain's steps {missing} are not registered")
    return [_steps[name] for name in ORDER]


_ZONES = "cartera.changes.zones"
"""``session.info`` key: (transaction, {tenant id: time zone}) read in that transaction."""


async def tenant_timezone(session: AsyncSession, tenant_id: int) -> str:
    """The tenant's time zone (``UTC`` for none), read once per transaction: a payment's
    write and every step of its chain date things in it."""
    sync = session.sync_session
    tx = sync.get_nested_transaction() or sync.get_transaction()
    memo = session.info.get(_ZONES)
    if tx is not None and memo is not None and memo[0] is tx and tenant_id in memo[1]:
        return str(memo[1][tenant_id])
    tz = await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    if tz is None:  # no such tenant (yet): nothing to remember
        return "UTC"
    tx = sync.get_nested_transaction() or sync.get_transaction()
    if tx is not None:
        zones = memo[1] if memo is not None and memo[0] is tx else {}
        zones[tenant_id] = tz
        session.info[_ZONES] = (tx, zones)
    return str(tz)


async def tenant_today(session: AsyncSession, tenant_id: int) -> date:
    """The tenant's business day now (:func:`tenant_timezone`)."""
    return clock.today_in(await tenant_timezone(session, tenant_id))


async def debtor_changed(session: AsyncSession, tenant_id: int, debtor_id: int,
                         kind: str, *, today: date | None = None,
                         now: datetime | None = None) -> Change:
    """Run the chain for one debtor in the caller's transaction (a money change holds the
    debtor's money lock from the balances step on; the caller takes it before reading
    their money)."""
    return await _run(session, tenant_id, debtor_id, kind, today, now)


async def tenant_changed(session: AsyncSession, tenant_id: int, kind: str, *,
                         today: date | None = None, now: datetime | None = None) -> Change:
    """The chain for many debtors of the tenant at once (say, the promises a periodic job
    broke): each step works set-based over the tenant (the strategy step leaves them to
    the tenant's next planner pass)."""
    if kind in MONEY or kind in SETTLE:
        raise ValueError(f"a {kind!r} change names its debtor")
    return await _run(session, tenant_id, None, kind, today, now)


async def debtors_changed(session: AsyncSession, tenant_id: int, within: Any, *,
                          kind: str = "import", today: date | None = None,
                          now: datetime | None = None) -> Change:
    """After a bulk load in the caller's transaction (an import's or an ERP sync's end,
    once it has rebalanced those debtors and settled their promises and plans): the rest
    of the chain (:data:`AFTER_LOAD`: re-segmentation, then the plan) over the debtors
    ``within`` selects (one column of debtor ids), each step one set-based pass over the
    id range that spans them (never a loop over the debtors). The range, not the list:
    the passes' statements are planned well for a range (``IN`` a select nested in their
    rule statements ran for minutes at 20,000 debtors); a new file's debtors have
    consecutive ids, and a range wider than the touched debtors replans some untouched
    ones too, which a pass makes idempotently. Nothing when ``within`` selects none."""
    if kind not in KINDS:
        raise ValueError(f"unknown change {kind!r}")
    await session.flush()
    ids = within.subquery()
    low, high = (await session.execute(select(func.min(ids.c[0]), func.max(ids.c[0])))).one()
    change = Change(tenant_id, None, kind, today or await tenant_today(session, tenant_id),
                    now or clock.now(), None if low is None else (int(low), int(high) + 1))
    if change.within is None:
        return change
    for name, fn in zip(ORDER, steps(), strict=True):
        if name in AFTER_LOAD:
            await fn(session, change)
    return change


async def _run(session: AsyncSession, tenant_id: int, debtor_id: int | None, kind: str,
               today: date | None, now: datetime | None) -> Change:
    if kind not in KINDS:
        raise ValueError(f"unknown change {kind!r}")
    await session.flush()
    change = Change(tenant_id, debtor_id, kind, today or await tenant_today(session, tenant_id),
                    now or clock.now())
    for fn in steps():
        await fn(session, change)
    return change
