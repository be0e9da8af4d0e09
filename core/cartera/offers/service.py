"""Offer use cases: the policy, making, approving, accepting, cancelling and applying offers.

An offer covers some of a debtor's open obligations in one currency and asks the debtor to
pay ``amount`` (less than what they owe by a discount) before it expires. It is
*applied* only when the debtor's payments (applied, not reversed, made after the offer was
created and before it expired — for an accepted installment proposal, whenever) add up to
``amount``: then the discount becomes a credit note allocated to the covered obligations, in
the transaction of the payment that completed it, which holds the debtor's money lock
(:func:`apply_paid_offers` is the first step of :mod:`cartera.changes`, which every money
write calls).
A payment reversed afterwards takes the credit note back and the offer is live again.

Legal caps: the country packs' charge findings (``CompliancePack.charges``, the SDK's
charges contract) say whether collection fees may be collected and up to how much; the
covered ``fee`` obligations beyond that are not part of the lawful amount the discount is
computed on, and an offer asking the debtor to pay more than the lawful amount is refused
(422 ``above_legal_cap``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes, clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db.base import table_of
from cartera.errors import Conflict, Forbidden, Invalid, NotFound
from cartera.offers import policy as policies
from cartera.offers import schemas
from cartera.offers.models import Offer, OfferPolicy
from cartera.payments.models import Allocation, Payment
from cartera.portfolio import aging
from cartera.portfolio.models import Debtor, DebtorBalance, Obligation
from cartera.portfolio.service import check_currency, get_debtor, parse_amount, tenant_today
from cartera.segmentation.models import Placement

LIVE_STATUSES = ("pending_approval", "open", "accepted")


# --- policy -------------------------------------------------------------------------------

async def put_policy(session: AsyncSession, actor: Actor,
                     data: schemas.OfferPolicyIn) -> policies.Policy:
    for i, rule in enumerate(data.rules):
        if rule.max_days_past_due is not None and rule.max_days_past_due < rule.min_days_past_due:
            raise Invalid("max_days_past_due is below min_days_past_due",
                          code="empty_range", param=f"rules[{i}].max_days_past_due")
    import msgspec

    rules = msgspec.to_builtins(data.rules)
    row = await session.get(OfferPolicy, actor.tenant_id)
    if row is None:
        row = OfferPolicy(tenant_id=actor.tenant_id, rules=rules,
                          max_validity_days=data.max_validity_days,
                          max_promise_horizon_days=data.max_promise_horizon_days,
                          updated_by=actor.name)
        session.add(row)
    else:
        row.rules, row.max_validity_days = rules, data.max_validity_days
        row.max_promise_horizon_days = data.max_promise_horizon_days
        row.updated_by = actor.name
    await session.flush()
    await session.refresh(row)
    audit.record(session, actor, "offer_policy.updated", "offer_policy", actor.tenant_id,
                 {"rules": rules, "max_validity_days": data.max_validity_days,
                  "max_promise_horizon_days": data.max_promise_horizon_days})
    return await policies.load(session, actor.tenant_id)


# --- making an offer ----------------------------------------------------------------------

async def _covered(session: AsyncSession, debtor: Debtor, currency: str,
                   obligation_ids: list[int]) -> list[Obligation]:
    if obligation_ids:
        ids = sorted(set(obligation_ids))
        rows = {o.id: o for o in (await session.scalars(select(Obligation).where(
            Obligation.id.in_(ids), Obligation.debtor_id == debtor.id))).all()}
        for i, oid in enumerate(obligation_ids):
            o = rows.get(oid)
            if o is None:
                raise Invalid(f"obligation {oid} is not one of this debtor's",
                              code="unknown_obligation", param=f"obligation_ids[{i}]")
            if o.currency != currency:
                raise Invalid(f"obligation {oid} is in {o.currency}", code="currency_mismatch",
                              param=f"obligation_ids[{i}]")
            if o.kind == "credit_note" or o.status != "open" or o.outstanding_minor <= 0:
                raise Invalid(f"obligation {oid} has nothing to pay",
                              code="obligation_not_payable", param=f"obligation_ids[{i}]")
        return [rows[i] for i in ids]
    return list((await session.scalars(select(Obligation).where(
        Obligation.debtor_id == debtor.id, Obligation.currency == currency,
        Obligation.kind != "credit_note", Obligation.status == "open",
        Obligation.outstanding_minor > 0).order_by(Obligation.id))).all())


async def days_past_due(session: AsyncSession, debtor_id: int, currency: str,
                        today: date) -> int:
    oldest = await session.scalar(select(DebtorBalance.oldest_unpaid_due_date).where(
        DebtorBalance.debtor_id == debtor_id, DebtorBalance.currency == currency))
    return aging.days_past_due(oldest, today)


def lawful_fees(debtor: Debtor, today: date, dpd: int, currency: str, fees_minor: int,
                overdue_minor: int) -> tuple[int, str | None]:
    """How much of ``fees_minor`` (covered ``fee`` obligations) the country's packs let the
    creditor collect, and the reason when less than all."""
    if fees_minor <= 0:
        return fees_minor, None
    from cartera_sdk.compliance import ChargeQuery
    from cartera_sdk.money import Money

    from cartera.messaging.gate import _packs
    from cartera.plugins.registry import current_host

    query = ChargeQuery(debtor_country=debtor.country, today=today, days_past_due=dpd,
                        overdue=Money(Decimal(money.from_minor(overdue_minor, currency)),
                                      currency))
    lawful, why = fees_minor, None
    for pack in _packs(current_host(), debtor.country):
        if not hasattr(pack, "charges"):
            continue
        for f in pack.charges(query):
            if f.kind != "collection_fee":
                continue
            if not f.allowed:
                lawful, why = 0, f"{pack.name}: {f.reason.code}"
            elif f.max_amount is not None and f.max_amount.currency == currency:
                cap = money.to_minor(f.max_amount.amount, currency)
                if cap < lawful:
                    lawful, why = cap, f"{pack.name}: {f.reason.code}"
    return lawful, why


def _installments(data: schemas.OfferCreate, today: date) -> tuple[list[dict[str, Any]], int]:
    if data.kind != "installments":
        if data.installments:
            raise Invalid("only an installment proposal takes installments",
                          code="unexpected_installments", param="installments")
        return [], 0
    if not data.installments:
        raise Invalid("an installment proposal has at least one installment",
                      code="no_installments", param="installments")
    if data.amount is not None or data.discount_percent is not None:
        raise Invalid("an installment proposal's amount is the sum of its installments",
                      code="unexpected_amount", param="amount")
    items, total = [], 0
    for i, item in enumerate(data.installments):
        param = f"installments[{i}]"
        minor = parse_amount(item.amount, data.currency, f"{param}.amount")
        if minor <= 0:
            raise Invalid("amounts must be positive", code="non_positive_amount",
                          param=f"{param}.amount")
        if i == 0 and item.due_date < today:
            raise Invalid(f"the first installment is due {item.due_date.isoformat()}, before "
                          f"today ({today.isoformat()})", code="date_in_past",
                          param=f"{param}.due_date")
        if i > 0 and item.due_date <= data.installments[i - 1].due_date:
            raise Invalid("installment due dates must be strictly increasing",
                          code="installments_out_of_order", param=f"{param}.due_date")
        items.append({"due_date": item.due_date.isoformat(),
                      "amount": money.from_minor(minor, data.currency)})
        total += minor
    return items, total


def _discount_bps(lawful: int, amount: int) -> int:
    """The discount off ``lawful`` in basis points, rounded up (a limit is never exceeded
    by rounding)."""
    if lawful <= 0:
        return 0
    value = (Decimal(lawful - amount) * 10000 / Decimal(lawful)).to_integral_value(ROUND_CEILING)
    return max(int(value), 0)


async def create_offer(session: AsyncSession, actor: Actor, scopes: frozenset[str],
                       data: schemas.OfferCreate) -> Offer:
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    check_currency(data.currency)
    today = await tenant_today(session, actor.tenant_id)
    policy = await policies.load(session, actor.tenant_id)
    if data.expires_in_days > policy.max_validity_days:
        raise Invalid(f"an offer may stay open at most {policy.max_validity_days} days "
                      f"(the tenant's offer policy)", code="validity_beyond_policy",
                      param="expires_in_days")
    covered = await _covered(session, debtor, data.currency, data.obligation_ids)
    covered_minor = sum(o.outstanding_minor for o in covered)
    if covered_minor <= 0:
        raise Invalid(f"the debtor owes nothing in {data.currency}", code="nothing_to_pay",
                      param="currency")
    dpd = await days_past_due(session, debtor.id, data.currency, today)
    fees = sum(o.outstanding_minor for o in covered if o.kind == "fee")
    overdue = sum(o.outstanding_minor for o in covered if o.due_date < today)
    lawful_fee, cap_reason = lawful_fees(debtor, today, dpd, data.currency, fees, overdue)
    lawful = covered_minor - fees + lawful_fee
    items, installments_total = _installments(data, today)
    if data.kind == "installments":
        amount, param = installments_total, "installments"
    elif data.amount is not None and data.discount_percent is not None:
        raise Invalid("give discount_percent or amount, not both", code="ambiguous_amount",
                      param="amount")
    elif data.amount is not None:
        amount, param = parse_amount(data.amount, data.currency, "amount"), "amount"
    elif data.discount_percent is not None:
        off = (Decimal(lawful) * Decimal(data.discount_percent) / 100).to_integral_value(
            ROUND_CEILING)
        amount, param = lawful - int(off), "discount_percent"
    else:
        raise Invalid("give discount_percent or amount", code="missing_amount",
                      param="discount_percent")
    if amount > lawful:
        detail = (f"the offer asks for {money.from_minor(amount, data.currency)} "
                  f"{data.currency}; at most {money.from_minor(lawful, data.currency)} may be "
                  f"collected on these obligations")
        raise Invalid(detail + (f" ({cap_reason})" if cap_reason else ""),
                      code="above_legal_cap" if cap_reason else "amount_above_balance",
                      param=param)
    if amount <= 0:
        raise Invalid("the debtor would pay nothing", code="non_positive_amount", param=param)
    discount_bps = _discount_bps(lawful, amount)
    segment_id = await session.scalar(select(Placement.segment_id).where(
        Placement.debtor_id == debtor.id))
    roles = policies.roles_of(scopes)
    mine = policies.limit_for(policy, roles, data.kind, segment_id, dpd)
    anyone = policies.limit_for(policy, None, data.kind, segment_id, dpd)
    if discount_bps > anyone:
        raise Invalid(f"a discount of {policies.percent(discount_bps)} % is beyond every limit "
                      f"of the tenant's offer policy for this debtor (at most "
                      f"{policies.percent(anyone)} % for a {data.kind} at {dpd} days past due"
                      f"{f' in segment {segment_id}' if segment_id else ''}, with approval)",
                      code="offer_beyond_limits", param=param)
    status = "open" if discount_bps <= mine else "pending_approval"
    offer = Offer(tenant_id=actor.tenant_id, debtor_id=debtor.id, kind=data.kind,
                  currency=data.currency, obligation_ids=[o.id for o in covered],
                  covered_minor=covered_minor, lawful_minor=lawful,
                  discount_minor=covered_minor - amount, discount_bps=discount_bps,
                  amount_minor=amount, installments=items, days_past_due=dpd,
                  segment_id=segment_id, status=status,
                  expires_at=clock.now() + timedelta(days=data.expires_in_days),
                  requested_by=actor.name, requester_limit_bps=mine, approval_limit_bps=anyone,
                  paid_minor=0, note=data.note, created_on=today)
    session.add(offer)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"the debtor already has a live offer in {data.currency}: cancel it "
                       f"first", code="offer_exists") from None
    await session.refresh(offer)
    audit.record(session, actor, "offer.created", "offer", offer.id, {
        "debtor_id": debtor.id, "kind": data.kind, "currency": data.currency,
        "amount": money.from_minor(amount, data.currency),
        "discount": money.from_minor(offer.discount_minor, data.currency),
        "discount_percent": policies.percent(discount_bps), "status": status,
        "requester_limit_percent": policies.percent(mine), "legal_cap": cap_reason})
    return offer


# --- reading ------------------------------------------------------------------------------

async def get_offer(session: AsyncSession, offer_id: int, *, for_update: bool = False,
                    debtor_id: int | None = None) -> Offer:
    stmt = select(Offer).where(Offer.id == offer_id,
                               Offer.tenant_id == session.info["tenant_id"])
    if debtor_id is not None:
        stmt = stmt.where(Offer.debtor_id == debtor_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    offer = await session.scalar(stmt)
    if offer is None:
        raise NotFound(f"offer {offer_id} not found")
    return offer


def status_of(offer: Offer, now: datetime | None = None) -> str:
    """The offer's status now: a live offer past its expiry is expired (an accepted
    installment proposal is a plan by then and does not expire)."""
    now = now or clock.now()
    if (offer.status in ("pending_approval", "open") and offer.expires_at <= now) or (
            offer.status == "accepted" and offer.kind != "installments"
            and offer.expires_at <= now):
        return "expired"
    return offer.status


def offer_out(o: Offer) -> schemas.OfferOut:
    def m(minor: int) -> str:
        return money.from_minor(minor, o.currency)

    return schemas.OfferOut(
        id=o.id, debtor_id=o.debtor_id, kind=o.kind,  # type: ignore[arg-type]
        currency=o.currency, obligation_ids=list(o.obligation_ids or []),
        covered_amount=m(o.covered_minor), lawful_amount=m(o.lawful_minor),
        discount_amount=m(o.discount_minor), discount_percent=policies.percent(o.discount_bps),
        amount=m(o.amount_minor), paid_amount=m(o.paid_minor),
        installments=[schemas.OfferInstallmentOut(number=i, due_date=date.fromisoformat(
            x["due_date"]), amount=x["amount"]) for i, x in enumerate(o.installments or [], 1)],
        days_past_due=o.days_past_due, segment_id=o.segment_id,
        status=status_of(o),  # type: ignore[arg-type]
        expires_at=o.expires_at, requested_by=o.requested_by,
        requester_limit_percent=policies.percent(o.requester_limit_bps),
        approval_limit_percent=policies.percent(o.approval_limit_bps),
        approved_by=o.approved_by, approved_at=o.approved_at, accepted_by=o.accepted_by,
        accepted_at=o.accepted_at, arrangement_id=o.arrangement_id, applied_at=o.applied_at,
        credit_note_id=o.credit_note_id, cancelled_at=o.cancelled_at, note=o.note,
        created_at=o.created_at)


def _live(offer: Offer, action: str) -> None:
    now_status = status_of(offer)
    if now_status == "expired":
        raise Conflict(f"offer {offer.id} expired at {offer.expires_at.isoformat()}",
                       code="offer_expired")
    if now_status not in LIVE_STATUSES:
        raise Conflict(f"offer {offer.id} is {now_status}: it cannot be {action}",
                       code="offer_not_live")


# --- approving, accepting, cancelling -----------------------------------------------------

async def approve_offer(session: AsyncSession, actor: Actor, scopes: frozenset[str],
                        offer_id: int) -> Offer:
    """A different client, holding a role whose limit covers the discount, approves it."""
    offer = await get_offer(session, offer_id, for_update=True)
    _live(offer, "approved")
    if offer.status != "pending_approval":
        raise Conflict(f"offer {offer.id} is {offer.status}: it needs no approval",
                       code="offer_not_pending_approval")
    if actor.name == offer.requested_by:
        raise Forbidden("an offer is approved by a different client than the one that made "
                        "it", code="same_actor")
    policy = await policies.load(session, actor.tenant_id)
    mine = policies.limit_for(policy, policies.roles_of(scopes), offer.kind, offer.segment_id,
                              offer.days_past_due)
    if offer.discount_bps > mine:
        raise Forbidden(f"a discount of {policies.percent(offer.discount_bps)} % is above "
                        f"what this client's roles may approve ({policies.percent(mine)} %)",
                        code="approval_limit_exceeded")
    offer.status, offer.approved_by, offer.approved_at = "open", actor.name, clock.now()
    await session.flush()
    audit.record(session, actor, "offer.approved", "offer", offer.id,
                 {"debtor_id": offer.debtor_id, "requested_by": offer.requested_by,
                  "discount_percent": policies.percent(offer.discount_bps),
                  "approver_limit_percent": policies.percent(mine)})
    return offer


async def accept_offer(session: AsyncSession, actor: Actor, offer_id: int, *,
                       debtor_id: int | None = None) -> Offer:
    """The debtor accepts an open offer (through self-service, or a client recording it): an
    installment proposal becomes an installment plan. Pending-approval offers cannot be
    accepted (409 ``offer_not_approved``): only what is within policy reaches the debtor."""
    from cartera.negotiation import schemas as negotiation
    from cartera.negotiation.service import create_arrangement
    from cartera.payments.locks import lock_debtors

    pre = await get_offer(session, offer_id, debtor_id=debtor_id)
    await lock_debtors(session, actor.tenant_id, [pre.debtor_id])
    offer = await get_offer(session, offer_id, for_update=True, debtor_id=debtor_id)
    _live(offer, "accepted")
    if offer.status == "pending_approval":
        raise Conflict(f"offer {offer.id} waits for approval", code="offer_not_approved")
    if offer.status == "accepted":
        return offer
    if offer.kind == "installments":
        plan = await create_arrangement(session, actor, negotiation.ArrangementCreate(
            debtor_id=offer.debtor_id, currency=offer.currency,
            installments=[negotiation.InstallmentIn(due_date=date.fromisoformat(x["due_date"]),
                                                    amount=x["amount"])
                          for x in offer.installments],
            note=f"offer {offer.id}"))
        offer.arrangement_id = plan.id
    offer.status, offer.accepted_by, offer.accepted_at = "accepted", actor.name, clock.now()
    await session.flush()
    audit.record(session, actor, "offer.accepted", "offer", offer.id,
                 {"debtor_id": offer.debtor_id, "arrangement_id": offer.arrangement_id})
    return offer


async def cancel_offer(session: AsyncSession, actor: Actor, offer_id: int) -> Offer:
    offer = await get_offer(session, offer_id, for_update=True)
    if offer.status not in LIVE_STATUSES:
        raise Conflict(f"offer {offer.id} is {offer.status}: it cannot be cancelled",
                       code="offer_not_live")
    offer.status, offer.cancelled_at = "cancelled", clock.now()
    await session.flush()
    audit.record(session, actor, "offer.cancelled", "offer", offer.id,
                 {"debtor_id": offer.debtor_id})
    return offer


async def expire_offers(session: AsyncSession, now: datetime) -> int:
    """Mark live offers past their expiry expired, set-based (the periodic job). Their
    status already reads expired; this frees the debtor for a new offer."""
    result = await session.execute(update(Offer).where(
        Offer.expires_at <= now,
        (Offer.status.in_(("pending_approval", "open")))
        | ((Offer.status == "accepted") & (Offer.kind != "installments")))
        .values(status="expired", updated_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- applying -----------------------------------------------------------------------------

def _paid_sql(offer: Any) -> Any:
    """What the debtor's applied payments made after the offer (and before its expiry,
    unless it is an accepted installment proposal) add up to."""
    stmt = select(func.coalesce(func.sum(Payment.amount_minor - Payment.refunded_minor), 0)
                  ).where(Payment.tenant_id == offer.tenant_id,
                          Payment.debtor_id == offer.debtor_id,
                          Payment.currency == offer.currency, Payment.status == "applied",
                          Payment.created_at >= offer.created_at)
    if not (offer.kind == "installments" and offer.arrangement_id is not None):
        stmt = stmt.where(Payment.created_at < offer.expires_at)
    return stmt


async def apply_paid_offers(session: AsyncSession, tenant_id: int, debtor_id: int,
                            today: date) -> None:
    """Settle the debtor's offers after a money change, in the caller's transaction, which
    holds the debtor's money lock from before it read their money: an offer whose amount is
    now paid is applied (its discount a credit note on its covered obligations); an applied
    offer whose payments were since reversed is live again and its credit note is gone."""
    offers = (await session.scalars(select(Offer).where(
        Offer.tenant_id == tenant_id, Offer.debtor_id == debtor_id,
        Offer.status.in_(("open", "accepted", "applied", "expired"))).execution_options(
            populate_existing=True))).all()
    if not offers:
        return
    actor = Actor(tenant_id=tenant_id, client_id=None, request_id=None)
    for offer in offers:
        paid = int(await session.scalar(_paid_sql(offer)) or 0)
        if paid != offer.paid_minor:
            offer.paid_minor = paid
        if offer.status != "applied" and paid >= offer.amount_minor:
            await _apply(session, actor, offer, today)
        elif offer.status == "applied" and paid < offer.amount_minor:
            await _unapply(session, actor, offer)
    await session.flush()


async def apply_paid_offers_many(session: AsyncSession, tenant_id: int, debtors: Any,
                                 today: date) -> int:
    """:func:`apply_paid_offers` for many debtors at once (a bulk import's payments):
    ``debtors`` is a subquery of debtor ids. What each of their offers is paid is one
    aggregate query, its ``paid_minor`` one executemany UPDATE; only the offers whose state
    changes (now paid in full, or paid no more) are applied or unapplied one by one. Returns
    how many changed state. The caller's transaction holds the debtors' money (an import's
    final step)."""
    o, p = table_of(Offer), table_of(Payment)
    window = or_(and_(o.c.kind == "installments", o.c.arrangement_id.is_not(None)),
                 p.c.created_at < o.c.expires_at)
    paid = func.coalesce(func.sum(p.c.amount_minor - p.c.refunded_minor), 0)
    rows = (await session.execute(
        select(o.c.id, o.c.status, o.c.amount_minor, o.c.paid_minor, paid.label("paid"))
        .select_from(o.outerjoin(p, and_(
            p.c.tenant_id == o.c.tenant_id, p.c.debtor_id == o.c.debtor_id,
            p.c.currency == o.c.currency, p.c.status == "applied",
            p.c.created_at >= o.c.created_at, window)))
        .where(o.c.tenant_id == tenant_id, o.c.debtor_id.in_(debtors),
               o.c.status.in_(("open", "accepted", "applied", "expired")))
        .group_by(o.c.id, o.c.status, o.c.amount_minor, o.c.paid_minor))).all()
    moved = [r for r in rows if int(r.paid) != r.paid_minor]
    if moved:
        await session.execute(update(o).where(o.c.id == bindparam("b_id")).values(
            paid_minor=bindparam("b_paid"), updated_at=clock.now()).execution_options(
            synchronize_session=False), [{"b_id": r.id, "b_paid": int(r.paid)} for r in moved])
    flips = [r.id for r in rows if (r.status != "applied") == (int(r.paid) >= r.amount_minor)]
    if not flips:
        return 0
    actor = Actor(tenant_id=tenant_id, client_id=None, request_id=None)
    for offer in (await session.scalars(select(Offer).where(Offer.id.in_(flips)).order_by(
            Offer.id).execution_options(populate_existing=True))).all():
        if offer.status != "applied":
            await _apply(session, actor, offer, today)
        else:
            await _unapply(session, actor, offer)
    await session.flush()
    return len(flips)


async def _apply(session: AsyncSession, actor: Actor, offer: Offer, today: date) -> None:
    # Conditional: only one transaction turns the offer applied, whatever the interleaving.
    won = await session.execute(update(Offer).where(
        Offer.id == offer.id, Offer.status.in_(("open", "accepted", "expired"))).values(
            status="applied", applied_at=clock.now(), updated_at=clock.now())
        .execution_options(synchronize_session=False))
    if not won.rowcount:  # type: ignore[attr-defined]
        return
    note_id: int | None = None
    if offer.discount_minor > 0:
        note = Obligation(tenant_id=offer.tenant_id, external_ref=f"offer-{offer.id}-discount",
                          debtor_id=offer.debtor_id, kind="credit_note", product="offer",
                          currency=offer.currency, original_minor=offer.discount_minor,
                          prior_paid_minor=0, outstanding_minor=offer.discount_minor,
                          issue_date=today, due_date=today, status="open")
        session.add(note)
        await session.flush()
        note_id = note.id
        covered = (await session.scalars(select(Obligation).where(
            Obligation.id.in_(offer.obligation_ids), Obligation.debtor_id == offer.debtor_id,
            Obligation.kind != "credit_note", Obligation.status.in_(("open", "paid")))
            .order_by(Obligation.due_date, Obligation.id))).all()
        taken = dict((await session.execute(
            select(Allocation.obligation_id, func.sum(Allocation.amount_minor)).where(
                Allocation.obligation_id.in_([o.id for o in covered]),
                Allocation.explicit.is_(True)).group_by(Allocation.obligation_id))).all()
        ) if covered else {}
        left = offer.discount_minor
        for o in covered:
            part = min(o.original_minor - o.prior_paid_minor - int(taken.get(o.id, 0)), left)
            if part > 0:
                session.add(Allocation(tenant_id=offer.tenant_id, debtor_id=offer.debtor_id,
                                       currency=offer.currency, obligation_id=o.id,
                                       credit_note_id=note.id, amount_minor=part,
                                       explicit=True))
                left -= part
            if left <= 0:
                break
        await session.flush()
    await session.refresh(offer)
    offer.credit_note_id = note_id
    await session.flush()
    audit.record(session, actor, "offer.applied", "offer", offer.id, {
        "debtor_id": offer.debtor_id, "paid": money.from_minor(offer.paid_minor, offer.currency),
        "credit_note_id": note_id, "currency": offer.currency,
        "discount": money.from_minor(offer.discount_minor, offer.currency),
        "obligation_ids": list(offer.obligation_ids)})


async def _unapply(session: AsyncSession, actor: Actor, offer: Offer) -> None:
    note_id = offer.credit_note_id
    if note_id is not None:
        await session.execute(delete(Allocation).where(Allocation.credit_note_id == note_id))
        await session.execute(delete(Obligation).where(Obligation.id == note_id))
    offer.status = "accepted" if offer.accepted_at else "open"
    if status_of(offer) == "expired":
        offer.status = "expired"
    offer.applied_at, offer.credit_note_id = None, None
    await session.flush()
    audit.record(session, actor, "offer.unapplied", "offer", offer.id, {
        "debtor_id": offer.debtor_id, "credit_note_id": note_id,
        "paid": money.from_minor(offer.paid_minor, offer.currency)})


def live_offers(tenant_id: int, debtor_id: int) -> Any:
    return select(Offer).where(Offer.tenant_id == tenant_id, Offer.debtor_id == debtor_id,
                               Offer.status.in_(LIVE_STATUSES))



@changes.step("offers")
async def offers_step(session: AsyncSession, change: changes.Change) -> None:
    """The chain's first step: after a money change, an offer the debtor has now paid in
    full gets its credit note before the allocation runs."""
    if change.money and change.debtor_id is not None:
        await apply_paid_offers(session, change.tenant_id, change.debtor_id, change.today)
