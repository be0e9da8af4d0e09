"""HTTP routes: /v1/portfolios, /v1/debtors (+ contact points, related parties, balance,
timeline) and /v1/obligations."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from cartera_sdk.channels import ChannelKind
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, app_context, principal_of, request_session
from cartera.api.etag import IfMatch, claim, tagged, with_etag
from cartera.api.pagination import (
    Days,
    Id,
    IdFilter,
    Limit,
    Page,
    StartingAfter,
    page_of,
    paginate,
)
from cartera.api.security import secured
from cartera.errors import NotFound
from cartera.portfolio import reads, schemas, service
from cartera.portfolio.models import ContactPoint, Debtor, Obligation, Portfolio
from cartera.types import ObligationKind, ObligationStatus

READ = secured("portfolio:read")
WRITE = secured("portfolio:write")

Expand = Annotated[list[Literal["balance"]] | None, Parameter(
    description="`balance`: each debtor with its balance per currency as of `as_of` (what "
                "`GET /v1/debtors/{id}/balance` answers), in the same request.")]
AsOf = Annotated[date | None, Parameter(description="Business date to compute days past due "
                                                    "at; default: today in the tenant's zone.")]


def _same(out: Any) -> Any:
    return out


async def _expand(session: AsyncSession, tenant_id: int, debtors: list[schemas.DebtorOut],
                  day: date) -> None:
    balances = await service.debtor_balances(session, tenant_id, [d.id for d in debtors], day)
    for d in debtors:
        d.balance = balances[d.id]


class PortfolioController(Controller):
    path = "/v1/portfolios"
    tags = ["Portfolios"]

    @post("/", summary="Create a portfolio", operation_id="CreatePortfolio", **WRITE)
    async def create(self, data: schemas.PortfolioCreate, session: AsyncSession,
                     actor: Actor) -> schemas.PortfolioOut:
        """Create a named portfolio (cartera) that obligations can belong to."""
        return service.portfolio_out(await service.create_portfolio(session, actor, data))

    @get("/", summary="List portfolios", operation_id="ListPortfolios", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None) -> Page[schemas.PortfolioOut]:
        """Portfolios in id order, one page at a time."""
        rows = (await session.scalars(paginate(select(Portfolio), Portfolio.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, service.portfolio_out)

    @get("/{portfolio_id:int}", summary="Get a portfolio", operation_id="GetPortfolio", **READ)
    async def retrieve(self, portfolio_id: Id,
                       session: AsyncSession) -> Response[schemas.PortfolioOut]:
        """One portfolio by id (with its `ETag`)."""
        portfolio = await service.get_portfolio(session, portfolio_id)
        return with_etag(service.portfolio_out(portfolio), portfolio.updated_at)

    @patch("/{portfolio_id:int}", summary="Update a portfolio", operation_id="UpdatePortfolio",
           **WRITE)
    async def update(self, portfolio_id: Id, data: schemas.PortfolioUpdate,
                     session: AsyncSession, actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.PortfolioOut]:
        """Change a portfolio's name or description (`If-Match`: only if unchanged)."""
        await claim(session, Portfolio, if_match, Portfolio.id == portfolio_id)
        out = service.portfolio_out(
            await service.update_portfolio(session, actor, portfolio_id, data))
        return await tagged(session, Portfolio, out, Portfolio.id == portfolio_id)


class DebtorController(Controller):
    path = "/v1/debtors"
    tags = ["Debtors"]

    @post("/", summary="Create a debtor", operation_id="CreateDebtor", **WRITE)
    async def create(self, data: schemas.DebtorCreate, session: AsyncSession,
                     actor: Actor) -> schemas.DebtorOut:
        """Create a debtor with contact points, related parties and tags.

        Phones are normalised to E.164 in the debtor's country; the time zone is derived from
        country and subdivision when not given.
        """
        debtor = await service.create_debtor(session, actor, data)
        return (await service.debtor_out(session, [debtor]))[0]

    @get("/", summary="List debtors", operation_id="ListDebtors", **READ)
    async def index(
        self, request: Request[Any, Any, Any], limit: Limit = 20,
        starting_after: StartingAfter = None,
        zone: str | None = None, country: str | None = None,
        tag: Annotated[list[str] | None, Parameter(description="Repeat to require all tags.")]
        = None,
        portfolio_id: IdFilter = None, external_ref: str | None = None,
        currency: str | None = None,
        dpd_min: Annotated[int | None, Parameter(
            ge=0, le=36_500, description="Min days past due.")] = None,
        dpd_max: Annotated[int | None, Parameter(
            ge=0, le=36_500, description="Max days past due.")] = None,
        segment: Annotated[str | None, Parameter(
            description="Segment code: the debtors the last evaluation put there.")] = None,
        stage: Annotated[str | None, Parameter(
            description="Collection stage code, e.g. judicial.")] = None,
        as_of: AsOf = None,
        q: Annotated[str | None, Parameter(
            min_length=1, max_length=200,
            description="Search: the whole name (exactly; personal data is encrypted at "
                        "rest, so no part of it), the national id, or an e-mail or phone "
                        "of a contact point (`+51 987 654 321` and `987654321` are the same "
                        "phone in a PE tenant).")] = None,
        expand: Expand = None,
    ) -> Page[schemas.DebtorOut]:
        """Debtors in id order, filtered by zone, country, tags, portfolio, currency, days
        past due (from the oldest unpaid due date), segment and stage, or found by `q`."""
        def values(zone_name: str, tenant_country: str) -> tuple[date, dict[str, Any],
                                                                dict[str, Any]]:
            day = as_of or clock.today_in(zone_name)
            filters = service.filter_values(
                as_of=day, zone=zone, country=country, tag=tag, portfolio_id=portfolio_id,
                external_ref=external_ref, dpd_min=dpd_min, dpd_max=dpd_max,
                currency=currency)
            search = service.search_values(q, tenant_country) if q is not None else {}
            return day, filters, search

        tenant_id = principal_of(request).tenant_id
        pool = app_context(request).read_pool
        if pool is not None and not expand and segment is None and stage is None:
            # The common list on PostgreSQL: one statement on a plain connection (no
            # session), as the one-debtor read.
            async with pool.connection() as conn:
                rows = await reads.list_debtors_plain(
                    conn, tenant_id, lambda *zone_country: values(*zone_country)[1:], limit,
                    starting_after)
            return page_of(rows, limit, _same)
        async with request_session(request) as session:
            zone_country = await reads.tenant_zone_country(session, tenant_id)
            day, filters, search = values(*zone_country)
            filters.update(await service.placement_values(session, tenant_id, segment,
                                                          stage))
            listed = await reads.list_debtors(session, tenant_id, filters, search, limit,
                                              starting_after, zone_country)
            dialect = (await session.connection()).dialect.name
            page = page_of(listed, limit, _same if dialect == "postgresql"
                           else lambda row: reads.debtor_out(row, dialect))
            if expand:
                await _expand(session, tenant_id, page.data, day)
        return page

    @get("/{debtor_id:int}", summary="Get a debtor", operation_id="GetDebtor", **READ)
    async def retrieve(self, request: Request[Any, Any, Any], debtor_id: Id,
                       expand: Expand = None,
                       as_of: AsOf = None) -> Response[schemas.DebtorOut]:
        """One debtor with contact points, related parties and tags (with its `ETag`)."""
        # The hottest read: without `expand`, on PostgreSQL, one statement on a plain
        # connection (no session); else in the request's session.
        pool = app_context(request).read_pool
        tenant_id = principal_of(request).tenant_id
        if pool is not None and not expand:
            async with pool.connection() as conn:
                out = await reads.read_debtor_plain(conn, tenant_id, debtor_id)
            if out is None:
                raise NotFound(f"debtor {debtor_id} not found")
            return with_etag(out, out.updated_at)
        async with request_session(request) as session:
            out = await reads.read_debtor(session, debtor_id)
            if out is None:
                raise NotFound(f"debtor {debtor_id} not found")
            if expand:
                day = as_of or await service.tenant_today(session, tenant_id)
                balances = await service.debtor_balances(session, tenant_id, [out.id], day)
                out.balance = balances[out.id]
        return with_etag(out, out.updated_at)

    @patch("/{debtor_id:int}", summary="Update a debtor", operation_id="UpdateDebtor", **WRITE)
    async def update(self, debtor_id: Id, data: schemas.DebtorUpdate, session: AsyncSession,
                     actor: Actor, if_match: IfMatch = None) -> Response[schemas.DebtorOut]:
        """Change a debtor's fields; ``tags`` replaces the whole set. With `If-Match` (the
        `ETag` of your read) only if no one changed the debtor since: else 412."""
        await claim(session, Debtor, if_match, Debtor.id == debtor_id)
        debtor = await service.update_debtor(session, actor, debtor_id, data)
        out = (await service.debtor_out(session, [debtor]))[0]
        return await tagged(session, Debtor, out, Debtor.id == debtor_id)

    @delete("/{debtor_id:int}", summary="Delete a debtor", operation_id="DeleteDebtor", **WRITE)
    async def remove(self, debtor_id: Id, session: AsyncSession, actor: Actor) -> None:
        """Delete a debtor that has no obligations (with money history, it is refused)."""
        await service.delete_debtor(session, actor, debtor_id)

    @post("/{debtor_id:int}/contact-points", summary="Add a contact point",
          operation_id="CreateContactPoint", **WRITE)
    async def add_contact_point(self, debtor_id: Id, data: schemas.ContactPointIn,
                                session: AsyncSession,
                                actor: Actor) -> Response[schemas.ContactPointOut]:
        """Add a phone, email, WhatsApp number or postal address, with consent and origin
        (its `ETag` is for `If-Match` on its updates)."""
        await service.add_contact_point(session, actor, debtor_id, data)
        debtor = await service.get_debtor(session, debtor_id)
        added = (await service.debtor_out(session, [debtor]))[0].contact_points[-1]
        return await tagged(session, ContactPoint, added, ContactPoint.id == added.id,
                            status_code=201)

    @patch("/{debtor_id:int}/contact-points/{contact_point_id:int}",
           summary="Update a contact point", operation_id="UpdateContactPoint", **WRITE)
    async def update_contact_point(self, debtor_id: Id, contact_point_id: Id,
                                   data: schemas.ContactPointUpdate, session: AsyncSession,
                                   actor: Actor, if_match: IfMatch = None,
                                   ) -> Response[schemas.ContactPointOut]:
        """Change consent, opt-outs, label or preference of a contact point (`If-Match`: the
        `ETag` of its last update, else 412)."""
        this = (ContactPoint.id == contact_point_id, ContactPoint.debtor_id == debtor_id)
        await claim(session, ContactPoint, if_match, *this)
        await service.update_contact_point(session, actor, debtor_id, contact_point_id, data)
        debtor = await service.get_debtor(session, debtor_id)
        out = (await service.debtor_out(session, [debtor]))[0].contact_points
        found = next(cp for cp in out if cp.id == contact_point_id)
        return await tagged(session, ContactPoint, found, *this)

    @delete("/{debtor_id:int}/contact-points/{contact_point_id:int}",
            summary="Remove a contact point", operation_id="DeleteContactPoint", **WRITE)
    async def delete_contact_point(self, debtor_id: Id, contact_point_id: Id,
                                   session: AsyncSession, actor: Actor) -> None:
        """Remove a contact point."""
        await service.delete_contact_point(session, actor, debtor_id, contact_point_id)

    @delete("/{debtor_id:int}/contact-points/{contact_point_id:int}/suppressions/{channel:str}",
            summary="Lift a contact point's suppression", operation_id="LiftSuppression",
            **WRITE)
    async def lift_suppression(self, debtor_id: Id, contact_point_id: Id,
                               channel: Annotated[ChannelKind, Parameter(
                                   description="The suppressed channel: whatsapp, sms, email, "
                                               "voice or letter.")],
                               session: AsyncSession, actor: Actor) -> None:
        """Make a contact point usable again for a channel a provider suppressed (hard
        bounce, spam complaint, carrier opt-out), e.g. once the debtor fixed the mailbox.
        Only this contact point; audited (``contact_point.suppression_lifted``). A channel
        that is not suppressed here answers 404 ``suppression_not_found``. A new provider
        suppression suppresses it again."""
        await service.lift_suppression(session, actor, debtor_id, contact_point_id, channel)

    @post("/{debtor_id:int}/related-parties", summary="Add a related party",
          operation_id="CreateRelatedParty", **WRITE)
    async def add_related_party(self, debtor_id: Id, data: schemas.RelatedPartyIn,
                                session: AsyncSession, actor: Actor) -> schemas.RelatedPartyOut:
        """Add a guarantor, co-debtor or reference."""
        await service.add_related_party(session, actor, debtor_id, data)
        debtor = await service.get_debtor(session, debtor_id)
        return (await service.debtor_out(session, [debtor]))[0].related_parties[-1]

    @delete("/{debtor_id:int}/related-parties/{related_party_id:int}",
            summary="Remove a related party", operation_id="DeleteRelatedParty", **WRITE)
    async def delete_related_party(self, debtor_id: Id, related_party_id: Id,
                                   session: AsyncSession, actor: Actor) -> None:
        """Remove a guarantor, co-debtor or reference (the removal is audited)."""
        await service.delete_related_party(session, actor, debtor_id, related_party_id)

    @get("/{debtor_id:int}/balance", summary="Get a debtor's balance",
         operation_id="GetDebtorBalance", **READ)
    async def balance(self, debtor_id: Id, session: AsyncSession, actor: Actor,
                      as_of: AsOf = None) -> schemas.DebtorBalanceOut:
        """Outstanding, overdue and unapplied credit per currency (credit notes netted), with
        days past due from the oldest unpaid due date and the aging bucket."""
        day = as_of or await service.tenant_today(session, actor.tenant_id)
        return await service.debtor_balance(session, debtor_id, day)

    @get("/{debtor_id:int}/timeline", summary="Get a debtor's timeline",
         operation_id="GetDebtorTimeline", **READ)
    async def timeline(self, debtor_id: Id, session: AsyncSession,
                       limit: Limit = 50) -> list[schemas.TimelineEntry]:
        """Newest first: obligations loaded, payments, reversals and every audited change."""
        return await service.timeline(session, debtor_id, limit)


class ObligationController(Controller):
    path = "/v1/obligations"
    tags = ["Obligations"]

    @post("/", summary="Create an obligation", operation_id="CreateObligation", **WRITE)
    async def create(self, data: schemas.ObligationCreate, session: AsyncSession,
                     actor: Actor) -> schemas.ObligationOut:
        """Load an invoice, installment, loan, card balance, fee, credit or debit note.

        ``outstanding_amount`` (default: the original amount) records what was already paid
        outside Cartera. A credit note's amount is applied to the debtor's oldest due
        obligations in its currency.
        """
        obligation = await service.create_obligation(session, actor, data)
        return service.obligation_out(obligation,
                                      await service.tenant_today(session, actor.tenant_id))

    @get("/", summary="List obligations", operation_id="ListObligations", **READ)
    async def index(
        self, session: AsyncSession, actor: Actor, limit: Limit = 20,
        starting_after: StartingAfter = None, debtor_id: IdFilter = None,
        portfolio_id: IdFilter = None, status: ObligationStatus | None = None,
        kind: ObligationKind | None = None, product: str | None = None,
        currency: str | None = None, due_from: date | None = None, due_to: date | None = None,
        dpd_min: Days = None,
        dpd_max: Days = None,
        zone: str | None = None, as_of: AsOf = None,
    ) -> Page[schemas.ObligationOut]:
        """Obligations in id order with filters; days past due are the obligation's own."""
        from datetime import timedelta

        day = as_of or await service.tenant_today(session, actor.tenant_id)
        stmt = select(Obligation)
        for column, value in ((Obligation.debtor_id, debtor_id),
                              (Obligation.portfolio_id, portfolio_id),
                              (Obligation.status, status), (Obligation.kind, kind),
                              (Obligation.product, product), (Obligation.currency, currency)):
            if value is not None:
                stmt = stmt.where(column == value)
        if due_from is not None:
            stmt = stmt.where(Obligation.due_date >= due_from)
        if due_to is not None:
            stmt = stmt.where(Obligation.due_date <= due_to)
        if dpd_min is not None or dpd_max is not None:
            stmt = stmt.where(Obligation.status == "open", Obligation.kind != "credit_note")
            if dpd_min:
                stmt = stmt.where(Obligation.due_date <= day - timedelta(days=dpd_min))
            if dpd_max is not None:
                stmt = stmt.where(Obligation.due_date >= day - timedelta(days=dpd_max))
        if zone is not None:
            stmt = stmt.join(Debtor, Debtor.id == Obligation.debtor_id).where(Debtor.zone == zone)
        rows = (await session.scalars(paginate(stmt, Obligation.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, lambda o: service.obligation_out(o, day))

    @get("/{obligation_id:int}", summary="Get an obligation", operation_id="GetObligation",
         **READ)
    async def retrieve(self, obligation_id: Id, session: AsyncSession,
                       actor: Actor) -> Response[schemas.ObligationOut]:
        """One obligation by id (with its `ETag`)."""
        obligation = await service.get_obligation(session, obligation_id)
        stamp = obligation.updated_at
        return with_etag(service.obligation_out(
            obligation, await service.tenant_today(session, actor.tenant_id)), stamp)

    @patch("/{obligation_id:int}", summary="Update an obligation",
           operation_id="UpdateObligation", **WRITE)
    async def update(self, obligation_id: Id, data: schemas.ObligationUpdate,
                     session: AsyncSession, actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.ObligationOut]:
        """Move the due date, change product or portfolio, or mark it disputed, written off
        or cancelled (and back to open). `If-Match`: only if unchanged since read, else 412."""
        await claim(session, Obligation, if_match, Obligation.id == obligation_id)
        obligation = await service.update_obligation(session, actor, obligation_id, data)
        out = service.obligation_out(obligation,
                                     await service.tenant_today(session, actor.tenant_id))
        return await tagged(session, Obligation, out, Obligation.id == obligation_id)
