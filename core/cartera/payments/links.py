"""Payment links: hosted checkout links made through a tenant's payment integration.

A link is made in three steps so the provider is never called inside a database
transaction: (1) **reserve** the row (one open link per debtor and purpose: the partial
unique index ``uq_payment_links_open_purpose`` makes concurrent requests find one row),
commit; (2) **call** the provider with the row's stable ``provider_idempotency_key`` and our
reference ``plink_<id>``; (3) **record** its URL. A retry after a failed or timed-out call
finds the reserved row and calls again with the same key, so the provider makes one link.
A provider builds its request from the row alone (Mercado Pago's preference body is a pure
function of it), so a retry is byte-identical under that key.

Only one request at a time calls the provider for a row (``calling_until``, a lease; the
others wait for its URL). Kept as defence in depth although retries are identical:
providers do not promise to deduplicate two calls with one key that are *in flight at once*
(the key is recorded when the first completes), a provider may not honour keys at all, and
it saves a call per concurrent request.

:func:`get_or_create_link` is the service entry point other features build on (offers,
self-service): it returns the debtor's open link for the purpose when it asks for the same
amount, replaces it (cancelled, ``superseded``) when it asks for another, else makes one.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from cartera_sdk.errors import ProviderError
from cartera_sdk.money import Money
from cartera_sdk.payments import Payer, PaymentLinkRequest
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.db.base import table_of
from cartera.errors import Conflict, Invalid
from cartera.events.outbox import emit
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.negotiation.models import Arrangement, Installment
from cartera.payments import schemas
from cartera.payments.models import PaymentLink
from cartera.plugins.host import PluginCallError, PluginHost
from cartera.portfolio.models import Debtor, Obligation
from cartera.portfolio.service import check_currency, get_debtor, parse_amount
from cartera.settings import get_settings
from cartera.tenants.models import Tenant

REFERENCE_PREFIX = "plink_"


def reference(link_id: int) -> str:
    """Our reference for a link at the provider (Mercado Pago ``external_reference``)."""
    return f"{REFERENCE_PREFIX}{link_id}"


def link_id_of(ref: str | None) -> int | None:
    """The link id in a provider payment's reference, or None when it is not one of ours."""
    if not ref or not ref.startswith(REFERENCE_PREFIX):
        return None
    digits = ref.removeprefix(REFERENCE_PREFIX)
    return int(digits) if digits.isdigit() and len(digits) < 19 else None


@dataclass(frozen=True)
class LinkAsk:
    """What a link is for: ``amount_minor`` in ``currency`` covering ``obligation_ids``."""

    debtor_id: int
    currency: str
    amount_minor: int
    purpose: str
    amount_kind: str
    expires_at: datetime
    obligation_ids: list[int] = field(default_factory=list)
    description: str | None = None
    integration_id: int | None = None


@dataclass
class Reserved:
    link: PaymentLink
    reused: bool
    needs_call: bool


async def payment_integration(session: AsyncSession, integration_id: int | None,
                              param: str = "integration_id") -> Integration:
    """The integration a link goes through: the one named, else the tenant's only enabled
    payment integration."""
    tenant_id = session.info["tenant_id"]
    if integration_id is not None:
        found = await session.get(Integration, integration_id)
        if (found is None or found.tenant_id != tenant_id or found.provider_kind != "payment"
                or not found.enabled):
            raise Invalid(f"integration {integration_id} is not an enabled payment integration",
                          code="unknown_integration", param=param)
        return found
    rows = (await session.scalars(select(Integration).where(
        Integration.tenant_id == tenant_id, Integration.provider_kind == "payment",
        Integration.enabled.is_(True)).order_by(Integration.id).limit(2))).all()
    if not rows:
        raise Invalid("the tenant has no enabled payment integration",
                      code="no_payment_integration", param=param)
    if len(rows) > 1:
        raise Invalid("the tenant has several payment integrations: name one",
                      code="ambiguous_integration", param=param)
    return rows[0]


async def _outstanding(session: AsyncSession, debtor_id: int, currency: str,
                       obligation_ids: list[int]) -> int:
    stmt = select(func.coalesce(func.sum(Obligation.outstanding_minor), 0)).where(
        Obligation.debtor_id == debtor_id, Obligation.currency == currency,
        Obligation.kind != "credit_note", Obligation.status == "open")
    if obligation_ids:
        stmt = stmt.where(Obligation.id.in_(obligation_ids))
    return int(await session.scalar(stmt) or 0)


async def resolve_ask(session: AsyncSession, data: schemas.PaymentLinkCreate) -> LinkAsk:
    """The amount, obligations and purpose a create request asks for, checked (422 naming
    the field otherwise)."""
    check_currency(data.currency)
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    obligation_ids = sorted(set(data.obligation_ids))
    for i, oid in enumerate(obligation_ids):
        o = await session.get(Obligation, oid)
        if o is None or o.debtor_id != debtor.id:
            raise Invalid(f"obligation {oid} is not one of this debtor's",
                          code="unknown_obligation", param=f"obligation_ids[{i}]")
        if o.currency != data.currency:
            raise Invalid(f"obligation {oid} is in {o.currency}", code="currency_mismatch",
                          param=f"obligation_ids[{i}]")
        if o.kind == "credit_note" or o.status != "open" or o.outstanding_minor <= 0:
            raise Invalid(f"obligation {oid} has nothing to pay", code="obligation_not_payable",
                          param=f"obligation_ids[{i}]")
    balance = await _outstanding(session, debtor.id, data.currency, obligation_ids)
    purpose = data.purpose or "balance"
    if data.amount_kind == "installment":
        if data.installment_id is None:
            raise Invalid("an installment link names installment_id", code="missing_installment",
                          param="installment_id")
        inst = await session.get(Installment, data.installment_id)
        plan = await session.get(Arrangement, inst.arrangement_id) if inst else None
        if inst is None or plan is None or plan.debtor_id != debtor.id:
            raise Invalid(f"installment {data.installment_id} is not one of this debtor's",
                          code="unknown_installment", param="installment_id")
        if plan.status != "active":
            raise Invalid(f"the plan of installment {inst.id} is {plan.status}",
                          code="plan_not_active", param="installment_id")
        if plan.currency != data.currency:
            raise Invalid(f"the plan is in {plan.currency}", code="currency_mismatch",
                          param="currency")
        amount = inst.amount_minor
        purpose = data.purpose or f"installment:{inst.id}"
    elif data.amount_kind == "chosen":
        if data.amount is None:
            raise Invalid("a chosen-amount link needs amount", code="missing_amount",
                          param="amount")
        amount = parse_amount(data.amount, data.currency, "amount")
        if not 0 < amount <= balance:
            raise Invalid(f"amount must be more than 0 and at most the balance, "
                          f"{money.from_minor(balance, data.currency)} {data.currency}",
                          code="amount_out_of_limits", param="amount")
    else:
        if data.amount is not None:
            raise Invalid("a balance link takes no amount", code="unexpected_amount",
                          param="amount")
        amount = balance
    if amount <= 0:
        raise Invalid(f"the debtor owes nothing in {data.currency}", code="nothing_to_pay",
                      param="currency")
    return LinkAsk(debtor_id=debtor.id, currency=data.currency, amount_minor=amount,
                   purpose=purpose, amount_kind=data.amount_kind,
                   expires_at=clock.now() + timedelta(hours=data.expires_in_hours),
                   obligation_ids=obligation_ids, description=data.description,
                   integration_id=data.integration_id)


def _same(link: PaymentLink, ask: LinkAsk, integration_id: int) -> bool:
    return (link.currency == ask.currency and link.amount_minor == ask.amount_minor
            and sorted(link.obligation_ids or []) == sorted(ask.obligation_ids)
            and link.integration_id == integration_id)


async def _open_link(session: AsyncSession, tenant_id: int, debtor_id: int,
                     purpose: str) -> PaymentLink | None:
    return await session.scalar(select(PaymentLink).where(
        PaymentLink.tenant_id == tenant_id, PaymentLink.debtor_id == debtor_id,
        PaymentLink.purpose == purpose, PaymentLink.status == "open")
        .execution_options(populate_existing=True))


def _end(link: PaymentLink, status: str, reason: str) -> None:
    link.status = status
    link.status_reason = reason[:200]
    link.ended_at = clock.now()


async def _reserve(session: AsyncSession, host: PluginHost, actor: Actor,
                   ask: LinkAsk) -> Reserved:
    tenant_id = actor.tenant_id
    integration = await payment_integration(session, ask.integration_id)
    registered = host.provider("payment", integration.provider_name)
    if registered is None:
        raise Invalid(f"integration {integration.id} has no installed provider",
                      code="provider_not_installed", param="integration_id")
    if ask.currency not in registered.provider.currencies:
        raise Invalid(f"{integration.provider_name} does not charge {ask.currency}",
                      code="currency_not_supported", param="currency")
    await get_owned(session, Debtor, ask.debtor_id, tenant_id, what="debtor")
    for _ in range(3):
        existing = await _open_link(session, tenant_id, ask.debtor_id, ask.purpose)
        if existing is not None and existing.expires_at <= clock.now():
            _end(existing, "expired", "expired")
            await session.flush()
            existing = None
        if existing is not None and _same(existing, ask, integration.id):
            return Reserved(existing, reused=True, needs_call=existing.url is None)
        if existing is not None:
            _end(existing, "cancelled", "superseded: a link for another amount was asked for")
            audit.record(session, actor, "payment_link.cancelled", "payment_link", existing.id,
                         {"debtor_id": existing.debtor_id, "reason": "superseded"})
            await session.flush()
        tenant = await session.get(Tenant, tenant_id)
        link = PaymentLink(
            tenant_id=tenant_id, debtor_id=ask.debtor_id, integration_id=integration.id,
            provider=integration.provider_name, purpose=ask.purpose,
            amount_kind=ask.amount_kind, currency=ask.currency, amount_minor=ask.amount_minor,
            obligation_ids=list(ask.obligation_ids),
            description=(ask.description or f"{tenant.name if tenant else 'Deuda'}: pago")[:200],
            status="open", expires_at=ask.expires_at,
            provider_idempotency_key=f"cartera-plink-{tenant_id}-{secrets.token_hex(16)}",
            created_by=actor.name)
        try:
            async with session.begin_nested():
                session.add(link)
                await session.flush()
        except IntegrityError:
            # Another request reserved the open link for this purpose first: use it.
            continue
        return Reserved(link, reused=False, needs_call=True)
    raise Conflict("the debtor's open link for this purpose keeps changing; retry",
                   code="link_contention")


async def get_or_create_link(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                             actor: Actor, ask: LinkAsk) -> tuple[PaymentLink, bool]:
    """The debtor's open link for ``ask.purpose`` (reused when it asks the same amount),
    else a new one made through the provider. Runs its own short transactions (never one
    across the provider call) and returns ``(link, reused)`` with ``link`` detached.

    Raises the provider's failure as :class:`~cartera.plugins.host.PluginCallError` (502;
    a retryable one leaves the reserved row for the retry, a permanent one cancels it)."""
    async with sessionmaker() as session:
        session.info["tenant_id"] = actor.tenant_id
        reserved = await _reserve(session, host, actor, ask)
        await session.commit()
        link = reserved.link
        if not reserved.needs_call:
            return link, reserved.reused
        lease = _call_lease(host)
        taken = (await session.execute(update(PaymentLink).where(
            PaymentLink.id == link.id, PaymentLink.url.is_(None),
            or_(PaymentLink.calling_until.is_(None), PaymentLink.calling_until < clock.now()))
            .values(calling_until=clock.now() + lease))).rowcount  # type: ignore[attr-defined]
        await session.commit()
        if not taken:
            # Another request is calling the provider for this link: wait for its URL. The
            # request that reserved the row still reports it as new, whoever made the call.
            return await _wait_for_url(sessionmaker, actor, link.id, lease), reserved.reused
        integration = await session.get(Integration, link.integration_id)
        debtor = await session.get(Debtor, link.debtor_id)
        await session.commit()  # nothing is held while the provider answers
    assert integration is not None and debtor is not None
    registered = host.provider("payment", integration.provider_name)
    assert registered is not None
    pctx = integrations.context_for(integration, registered.provider,
                                    get_settings().public_base, host.timeout_seconds)
    request = PaymentLinkRequest(
        reference=reference(link.id), idempotency_key=link.provider_idempotency_key,
        amount=Money(Decimal(money.from_minor(link.amount_minor, link.currency)),
                     link.currency),
        description=link.description, expires_at=link.expires_at,
        payer=Payer(name=debtor.name),
        metadata={"cartera_link_id": str(link.id), "debtor_id": str(link.debtor_id)})
    try:
        made = await host.call(registered.provider.create_payment_link(request, pctx),
                               what="payment link")
    except PluginCallError as exc:
        cause = exc.__cause__
        refused = isinstance(cause, ProviderError) and cause.kind == "permanent"
        async with sessionmaker() as session:
            session.info["tenant_id"] = actor.tenant_id
            values: dict[str, object] = {"calling_until": None}
            if refused:
                values.update(status="cancelled", ended_at=clock.now(),
                              status_reason=f"provider_refused: {getattr(cause, 'code', '')}"[
                                  :200])
            await session.execute(update(PaymentLink).where(
                PaymentLink.id == link.id, PaymentLink.status == "open",
                PaymentLink.url.is_(None)).values(**values))
            await session.commit()
        raise
    async with sessionmaker() as session:
        session.info["tenant_id"] = actor.tenant_id
        row = await session.get(PaymentLink, link.id, populate_existing=True)
        assert row is not None
        if row.url is None:
            row.url = made.url
            row.provider_link_id = made.provider_link_id
            row.calling_until = None
            audit.record(session, actor, "payment_link.created", "payment_link", row.id, {
                "debtor_id": row.debtor_id, "purpose": row.purpose,
                "amount": money.from_minor(row.amount_minor, row.currency),
                "currency": row.currency, "obligation_ids": list(row.obligation_ids or [])})
        await session.commit()
        return row, reserved.reused


def _call_lease(host: PluginHost) -> timedelta:
    """How long one request may hold a reserved link's provider call: the host's timeout
    and a margin."""
    return timedelta(seconds=host.timeout_seconds * 2 + 1)


async def _wait_for_url(sessionmaker: async_sessionmaker[AsyncSession], actor: Actor,
                        link_id: int, lease: timedelta) -> PaymentLink:
    deadline = clock.now() + lease
    while True:
        async with sessionmaker() as session:
            session.info["tenant_id"] = actor.tenant_id
            row = await session.get(PaymentLink, link_id)
            assert row is not None
            if row.url is not None or row.status != "open":
                return row
            if row.calling_until is None or clock.now() > deadline:
                raise Conflict("the payment link is being made by another request; retry",
                               code="link_in_progress")
        await asyncio.sleep(0.05)


async def get_link(session: AsyncSession, link_id: int) -> PaymentLink:
    return await get_owned(session, PaymentLink, link_id, session.info["tenant_id"],
                           what="payment link")


async def cancel_link(session: AsyncSession, actor: Actor, link_id: int,
                      reason: str) -> PaymentLink:
    """Cancel an open link (a payment made on it later is still reconciled)."""
    link = await get_link(session, link_id)
    if link.status != "open":
        raise Conflict(f"this link is {link.status}", code="link_not_open")
    _end(link, "cancelled", reason)
    await session.flush()
    audit.record(session, actor, "payment_link.cancelled", "payment_link", link.id,
                 {"debtor_id": link.debtor_id, "reason": reason})
    return link


async def expire_links(session: AsyncSession, now: datetime) -> int:
    """Every open link past its expiry becomes ``expired`` (one UPDATE over the partial
    expiry index), with a ``payment_link.expired`` event each."""
    t = table_of(PaymentLink)
    rows = (await session.execute(
        update(t).where(t.c.status == "open", t.c.expires_at <= now)
        .values(status="expired", status_reason="expired", ended_at=now, updated_at=now)
        .returning(t.c.id, t.c.tenant_id, t.c.debtor_id))).all()
    for link_id, tenant_id, debtor_id in rows:
        emit(session, int(tenant_id), "payment_link.expired", "payment_link", link_id,
             debtor_id=int(debtor_id), data={"status": "expired"})
    return len(rows)


async def open_urls(session: AsyncSession, tenant_id: int,
                    debtor_ids: list[int]) -> dict[int, str]:
    """Each debtor's open, usable link URL (the ``balance`` purpose first, then the newest):
    what templates see as ``links.payment``."""
    if not debtor_ids:
        return {}
    rows = (await session.execute(select(
        PaymentLink.debtor_id, PaymentLink.url, PaymentLink.purpose).where(
        PaymentLink.tenant_id == tenant_id, PaymentLink.debtor_id.in_(debtor_ids),
        PaymentLink.status == "open", PaymentLink.url.is_not(None),
        PaymentLink.expires_at > clock.now()).order_by(PaymentLink.id.desc()))).all()
    found: dict[int, tuple[bool, str]] = {}
    for debtor_id, url, purpose in rows:
        best = found.get(debtor_id)
        if best is None or (purpose == "balance" and not best[0]):
            found[debtor_id] = (purpose == "balance", str(url))
    return {d: url for d, (_, url) in found.items()}


def link_out(link: PaymentLink, reused: bool = False) -> schemas.PaymentLinkOut:
    return schemas.PaymentLinkOut(
        id=link.id, debtor_id=link.debtor_id, integration_id=link.integration_id,
        provider=link.provider, purpose=link.purpose, amount_kind=link.amount_kind,
        currency=link.currency, amount=money.from_minor(link.amount_minor, link.currency),
        obligation_ids=list(link.obligation_ids or []), description=link.description,
        status=link.status,  # type: ignore[arg-type]
        url=link.url, expires_at=link.expires_at, payment_id=link.payment_id,
        status_reason=link.status_reason, reused=reused, created_at=link.created_at,
        paid_at=link.paid_at)

