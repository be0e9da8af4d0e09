"""HTTP routes: /v1/self-service-links (clients issue and revoke debtors' links) and the
debtor-facing /self-service endpoints (authenticated by the link's token, no OAuth)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import Provide
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import money
from cartera.api.context import Actor, app_context
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.audit import service as audit
from cartera.audit.models import AuditEntry
from cartera.errors import Invalid, NotFound
from cartera.negotiation import schemas as negotiation
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.negotiation.service import create_promise
from cartera.offers import policy as policies
from cartera.offers import service as offers
from cartera.offers.models import Offer
from cartera.payments import links
from cartera.payments import schemas as payments
from cartera.plugins.registry import current_host
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from cartera.portfolio.service import parse_amount, resegment_debtor, tenant_today
from cartera.selfservice import schemas, service
from cartera.selfservice.models import SelfServiceLink
from cartera.selfservice.service import SelfService

SS_SECURITY: list[dict[str, list[str]]] = [{"self_service_token": []}]


class SelfServiceLinkController(Controller):
    path = "/v1/self-service-links"
    tags = ["Self-service"]

    @post("/", summary="Issue a debtor's self-service link",
          operation_id="CreateSelfServiceLink", **secured("self-service:write"))
    async def create(self, request: Request[Any, Any, Any], data: schemas.SelfServiceLinkCreate,
                     session: AsyncSession, actor: Actor) -> schemas.SelfServiceLinkOut:
        """A short-lived link (1 hour to 14 days) giving one debtor the ``/self-service``
        endpoints. Its ``token`` and ``url`` are shown only here (the token is stored as
        its SHA-256); send ``url`` in a message (a template's ``links.self_service``)."""
        settings = app_context(request).settings
        base = settings.self_service_url or f"{settings.public_base}/self-service"
        return await service.issue(session, actor, data, base)

    @get("/", summary="List self-service links", operation_id="ListSelfServiceLinks",
         **secured("self-service:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None,
                    debtor_id: IdFilter = None) -> Page[schemas.SelfServiceLinkOut]:
        """Links in id order (never their tokens)."""
        stmt = select(SelfServiceLink)
        if debtor_id is not None:
            stmt = stmt.where(SelfServiceLink.debtor_id == debtor_id)
        rows = (await session.scalars(paginate(stmt, SelfServiceLink.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, service.link_out)

    @post("/{link_id:int}/revoke", summary="Revoke a self-service link",
          operation_id="RevokeSelfServiceLink", status_code=200,
          **secured("self-service:write"))
    async def revoke(self, link_id: Id, session: AsyncSession,
                     actor: Actor) -> schemas.SelfServiceLinkOut:
        """The link stops working at once (401 ``self_service_token_revoked``)."""
        return service.link_out(await service.revoke(session, actor, link_id))


async def _horizon(ss: SelfService) -> Any:
    policy = await policies.load(ss.session, ss.link.tenant_id)
    today = await tenant_today(ss.session, ss.link.tenant_id)
    return today, today + timedelta(days=policy.max_promise_horizon_days)


class SelfServiceController(Controller):
    """What a debtor sees and does through their link (header ``X-Self-Service-Token``)."""

    path = "/self-service"
    tags = ["Self-service"]
    dependencies = {"ss": Provide(service.provide_self_service)}
    security = SS_SECURITY

    @get("/", summary="The debtor's balance, open obligations, offers and promises",
         operation_id="SelfServiceOverview")
    async def overview(self, ss: SelfService) -> schemas.SelfServiceOut:
        """What the link's debtor owes, per currency and per open obligation, the offers
        open to them and their promises."""
        s, debtor_id = ss.session, ss.link.debtor_id
        debtor = await s.get(Debtor, debtor_id)
        assert debtor is not None
        today, horizon = await _horizon(ss)
        bal = (await s.scalars(select(DebtorBalance).where(
            DebtorBalance.debtor_id == debtor_id).order_by(DebtorBalance.currency))).all()
        obligations = (await s.scalars(select(Obligation).where(
            Obligation.debtor_id == debtor_id, Obligation.kind != "credit_note",
            Obligation.status == "open", Obligation.outstanding_minor > 0)
            .order_by(Obligation.due_date, Obligation.id).limit(100))).all()
        live = [o for o in (await s.scalars(offers.live_offers(ss.link.tenant_id, debtor_id)
                                            .order_by(Offer.id))).all()
                if offers.status_of(o) in ("open", "accepted")]
        promises = (await s.scalars(select(Promise).where(
            Promise.debtor_id == debtor_id).order_by(Promise.id.desc()).limit(20))).all()
        return schemas.SelfServiceOut(
            debtor_name=debtor.name, expires_at=ss.link.expires_at,
            balances=[schemas.BalanceView(
                currency=b.currency,
                outstanding_amount=money.from_minor(b.outstanding_minor, b.currency),
                overdue_amount=money.from_minor(b.overdue_minor, b.currency),
                days_past_due=aging.days_past_due(b.oldest_unpaid_due_date, today))
                for b in bal],
            obligations=[schemas.ObligationView(
                id=o.id, external_ref=o.external_ref, kind=o.kind, currency=o.currency,
                due_date=o.due_date,
                outstanding_amount=money.from_minor(o.outstanding_minor, o.currency))
                for o in obligations],
            offers=[offers.offer_out(o) for o in live],
            promises=[schemas.PromiseView(id=p.id, currency=p.currency,
                                          amount=money.from_minor(p.amount_minor, p.currency),
                                          promised_date=p.promised_date, status=p.status)
                      for p in promises],
            max_promise_date=horizon)

    @post("/payment-link", summary="Get or reuse a payment link",
          operation_id="SelfServicePaymentLink", status_code=200)
    async def payment_link(self, request: Request[Any, Any, Any], data: schemas.PaymentLinkAsk,
                           ss: SelfService) -> payments.PaymentLinkOut:
        """A checkout link for the balance in ``currency``, for an open offer
        (``offer_id``: its amount, on its obligations) or for an installment of the
        debtor's plan (``installment_id``); the open one for the same purpose and amount is
        reused. Another debtor's offer or installment answers 404."""
        s, debtor_id = ss.session, ss.link.debtor_id
        ask = payments.PaymentLinkCreate(debtor_id=debtor_id, currency=data.currency)
        if data.offer_id is not None and data.installment_id is not None:
            raise Invalid("give offer_id or installment_id, not both", code="ambiguous_amount",
                          param="offer_id")
        if data.offer_id is not None:
            offer = await offers.get_offer(s, data.offer_id, debtor_id=debtor_id)
            if offers.status_of(offer) not in ("open", "accepted"):
                raise Invalid(f"offer {offer.id} is not open", code="offer_not_open",
                              param="offer_id")
            if offer.currency != data.currency:
                raise Invalid(f"the offer is in {offer.currency}", code="currency_mismatch",
                              param="currency")
            ask = payments.PaymentLinkCreate(
                debtor_id=debtor_id, currency=data.currency, amount_kind="chosen",
                amount=money.from_minor(offer.amount_minor, offer.currency),
                obligation_ids=list(offer.obligation_ids), purpose=f"offer:{offer.id}")
        elif data.installment_id is not None:
            inst = await s.get(Installment, data.installment_id)
            plan = await s.get(Arrangement, inst.arrangement_id) if inst else None
            if inst is None or plan is None or plan.debtor_id != debtor_id:
                raise NotFound(f"installment {data.installment_id} not found")
            ask = payments.PaymentLinkCreate(debtor_id=debtor_id, currency=data.currency,
                                             amount_kind="installment",
                                             installment_id=inst.id)
        resolved = await links.resolve_ask(s, ask)
        # The provider is called outside any transaction: this request's session holds none
        # (it only read); the link's own short transactions audit it as the link.
        await s.commit()
        link, reused = await links.get_or_create_link(app_context(request).sessionmaker,
                                                      current_host(), ss.actor, resolved)
        return links.link_out(link, reused)

    @post("/offers/{offer_id:int}/accept", summary="Accept an offer",
          operation_id="SelfServiceAcceptOffer", status_code=200)
    async def accept_offer(self, offer_id: Id, ss: SelfService) -> Any:
        """Accept one of the debtor's open offers (an installment proposal: choose that
        plan; it becomes an installment plan). Offers waiting for approval, expired or of
        another debtor cannot be accepted."""
        offer = await offers.accept_offer(ss.session, ss.actor, offer_id,
                                          debtor_id=ss.link.debtor_id)
        return offers.offer_out(offer)

    @post("/promises", summary="Promise to pay", operation_id="SelfServicePromise")
    async def promise(self, data: schemas.PromiseAsk,
                      ss: SelfService) -> negotiation.PromiseOut:
        """A promise to pay ``amount`` (at most the balance in ``currency``) by
        ``promised_date``: today or later, and no later than the tenant's horizon
        (``max_promise_date``; 422 ``date_in_past`` / ``date_beyond_horizon``)."""
        s, debtor_id = ss.session, ss.link.debtor_id
        _today, horizon = await _horizon(ss)
        if data.promised_date > horizon:
            raise Invalid(f"promised_date must be {horizon.isoformat()} or earlier (the "
                          f"tenant's horizon)", code="date_beyond_horizon",
                          param="promised_date")
        amount = parse_amount(data.amount, data.currency, "amount")
        owed = await s.scalar(select(DebtorBalance.outstanding_minor).where(
            DebtorBalance.debtor_id == debtor_id, DebtorBalance.currency == data.currency))
        if amount <= 0 or amount > int(owed or 0):
            raise Invalid(f"amount must be more than 0 and at most the balance, "
                          f"{money.from_minor(int(owed or 0), data.currency)} {data.currency}",
                          code="amount_out_of_limits", param="amount")
        from cartera.negotiation.service import promise_out

        promise = await create_promise(s, ss.actor, negotiation.PromiseCreate(
            debtor_id=debtor_id, currency=data.currency, amount=data.amount,
            promised_date=data.promised_date, note=f"self-service link {ss.link.id}"))
        return promise_out(promise)

    @post("/opt-outs", summary="Stop messages on a channel", operation_id="SelfServiceOptOut",
          status_code=200)
    async def opt_out(self, data: schemas.OptOutAsk, ss: SelfService) -> schemas.OptOutOut:
        """Opt every contact point of the debtor out of ``channel``."""
        s, debtor_id = ss.session, ss.link.debtor_id
        points = (await s.scalars(select(ContactPoint).where(
            ContactPoint.debtor_id == debtor_id).order_by(ContactPoint.id)
            .with_for_update())).all()
        changed = [cp for cp in points if data.channel not in (cp.opted_out_channels or [])]
        for cp in changed:
            cp.opted_out_channels = sorted({*(cp.opted_out_channels or []), data.channel})
        await s.flush()
        if changed:
            await resegment_debtor(s, ss.link.tenant_id, debtor_id)
        audit.record(s, ss.actor, "contact_point.opted_out", "debtor", debtor_id,
                     {"channel": data.channel, "contact_point_ids": [cp.id for cp in changed],
                      "why": "self-service"})
        return schemas.OptOutOut(channel=data.channel, contact_points=len(changed))

    @get("/activity", summary="What was done through self-service",
         operation_id="SelfServiceActivity")
    async def activity(self, ss: SelfService) -> list[schemas.ActivityOut]:
        """The last 100 actions taken through any of the debtor's self-service links."""
        s = ss.session
        ids = (await s.scalars(select(SelfServiceLink.id).where(
            SelfServiceLink.debtor_id == ss.link.debtor_id))).all()
        rows = (await s.scalars(select(AuditEntry).where(
            AuditEntry.tenant_id == ss.link.tenant_id,
            AuditEntry.actor.in_([f"self_service_link:{i}" for i in ids]))
            .order_by(AuditEntry.id.desc()).limit(100))).all()
        return [schemas.ActivityOut(at=a.at, action=a.action, resource_type=a.resource_type,
                                    resource_id=a.resource_id) for a in rows]


ROUTES = [SelfServiceLinkController, SelfServiceController]
