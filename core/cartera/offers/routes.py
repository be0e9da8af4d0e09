"""HTTP routes: /v1/offers and /v1/offer-policy."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post, put
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, principal_of
from cartera.api.etag import IfMatch, check_content, with_content_etag
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.offers import policy as policies
from cartera.offers import schemas, service
from cartera.offers.models import Offer, OfferPolicy

READ = secured("offers:read")
WRITE = secured("offers:write")


def _scopes(request: Request[Any, Any, Any]) -> frozenset[str]:
    return principal_of(request).scopes


class OfferController(Controller):
    path = "/v1/offers"
    tags = ["Offers"]

    @post("/", summary="Make an offer", operation_id="CreateOffer", **WRITE)
    async def create(self, request: Request[Any, Any, Any], data: schemas.OfferCreate,
                     session: AsyncSession, actor: Actor) -> schemas.OfferOut:
        """An early-payment **discount**, a **settlement** (quita) or an **installment
        proposal** on the debtor's open obligations in one currency (all of them unless
        ``obligation_ids`` are named). The discount is checked against the tenant's offer
        policy (``/v1/offer-policy``) for the debtor's segment and days past due and the
        roles of the calling client (scopes ``role:collector``, ``role:supervisor``,
        ``role:manager``): within the client's limit the offer is ``open``; above it and
        within some role's limit it is ``pending_approval`` until a different client
        approves it; beyond every limit it is refused (422 ``offer_beyond_limits``).
        Charges the country's law does not allow (collection fees where the pack forbids
        or caps them) are not part of the amount asked for (422 ``above_legal_cap``). One
        live offer per debtor and currency (409 ``offer_exists``). It is **applied** when
        the debtor's payments made after it and before it expires add up to ``amount``: the
        discount becomes a credit note on the covered obligations."""
        return service.offer_out(await service.create_offer(session, actor, _scopes(request),
                                                            data))

    @get("/", summary="List offers", operation_id="ListOffers", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    status: schemas.OfferStatus | None = None) -> Page[schemas.OfferOut]:
        """Offers in id order. ``status`` filters on the stored status (an offer past its
        expiry reads ``expired`` before the periodic job marks it)."""
        stmt = select(Offer)
        if debtor_id is not None:
            stmt = stmt.where(Offer.debtor_id == debtor_id)
        if status is not None:
            stmt = stmt.where(Offer.status == status)
        rows = (await session.scalars(paginate(stmt, Offer.id, limit, starting_after))).all()
        return page_of(rows, limit, service.offer_out)

    @get("/{offer_id:int}", summary="Get an offer", operation_id="GetOffer", **READ)
    async def retrieve(self, offer_id: Id, session: AsyncSession) -> schemas.OfferOut:
        """One offer with what has been paid toward it."""
        return service.offer_out(await service.get_offer(session, offer_id))

    @post("/{offer_id:int}/approve", summary="Approve an offer", operation_id="ApproveOffer",
          status_code=200, **WRITE)
    async def approve(self, request: Request[Any, Any, Any], offer_id: Id,
                      session: AsyncSession, actor: Actor) -> schemas.OfferOut:
        """Approve an offer waiting for approval: by a client other than the one that made
        it (403 ``same_actor``) holding a role whose limit covers its discount (403
        ``approval_limit_exceeded``). Audited."""
        return service.offer_out(await service.approve_offer(session, actor, _scopes(request),
                                                             offer_id))

    @post("/{offer_id:int}/accept", summary="Record that the debtor accepted an offer",
          operation_id="AcceptOffer", status_code=200, **WRITE)
    async def accept(self, offer_id: Id, session: AsyncSession,
                     actor: Actor) -> schemas.OfferOut:
        """The debtor accepted an open offer (an installment proposal becomes an
        installment plan, ``arrangement_id``). 409 ``offer_not_approved`` while it waits
        for approval, ``offer_expired`` once expired."""
        return service.offer_out(await service.accept_offer(session, actor, offer_id))

    @post("/{offer_id:int}/cancel", summary="Cancel an offer", operation_id="CancelOffer",
          status_code=200, **WRITE)
    async def cancel(self, offer_id: Id, session: AsyncSession,
                     actor: Actor) -> schemas.OfferOut:
        """Cancel a live offer (409 ``offer_not_live`` once applied, expired or
        cancelled)."""
        return service.offer_out(await service.cancel_offer(session, actor, offer_id))


class OfferPolicyController(Controller):
    path = "/v1/offer-policy"
    tags = ["Offers"]

    @get("/", summary="Get the offer policy", operation_id="GetOfferPolicy", **READ)
    async def retrieve(self, session: AsyncSession,
                       actor: Actor) -> Response[schemas.OfferPolicyOut]:
        """The tenant's offer policy, or the built-in default (collectors 10 %, supervisors
        30 %, managers 50 %; offers open 30 days at most; promises 30 days ahead at
        most), with its `ETag` for `If-Match` on the `PUT`."""
        return with_content_etag(policies.out(await policies.load(session, actor.tenant_id)))

    @put("/", summary="Set the offer policy", operation_id="PutOfferPolicy",
         **secured("offers:admin"))
    async def replace(self, data: schemas.OfferPolicyIn, session: AsyncSession,
                      actor: Actor, if_match: IfMatch = None,
                      ) -> Response[schemas.OfferPolicyOut]:
        """Replace the tenant's offer policy: discount limits per role (``role:<name>``
        scopes), segment, days past due and kind of offer; the longest an offer stays open;
        the furthest a self-service promise may be. Audited. `If-Match` (the `ETag` of your
        read): only if no one changed it since, else 412."""
        if if_match is not None:
            await session.get(OfferPolicy, actor.tenant_id, with_for_update=True)
            check_content(if_match, policies.out(await policies.load(session, actor.tenant_id)))
        return with_content_etag(policies.out(await service.put_policy(session, actor, data)))


ROUTES = [OfferController, OfferPolicyController]
