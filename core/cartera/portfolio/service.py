"""Portfolio use cases: portfolios, debtors (with contact points, related parties, tags),
obligations, balances and the timeline. Every function works inside the caller's
tenant-scoped session and audits its writes there."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, cast

import msgspec
import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Text,
    bindparam,
    delete,
    exists,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.audit.models import AuditEntry
from cartera.changes import tenant_today as tenant_today
from cartera.crypto import pii_cipher
from cartera.db import get_owned
from cartera.errors import Conflict, Invalid, NotFound
from cartera.messaging.models import Interaction
from cartera.payments.models import Payment
from cartera.portfolio import aging, schemas, summary, validation
from cartera.portfolio.locks import lock_debtors
from cartera.portfolio.models import (
    ContactPoint,
    Debtor,
    DebtorBalance,
    DebtorTag,
    Obligation,
    Portfolio,
    RelatedParty,
)
from cartera.segmentation.models import Placement, Segment, Stage
from cartera.types import DebtorKind, ObligationKind, ObligationStatus


def _changes(struct: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.to_builtins(struct).items() if v is not msgspec.UNSET}


async def resegment_debtor(session: AsyncSession, tenant_id: int, debtor_id: int,
                          kind: str = "debtor") -> None:
    """After a change to the debtor or their contact points (not their money): re-derive
    what depends on them (:func:`cartera.changes.debtor_changed`) in the caller's
    transaction."""
    await changes.debtor_changed(session, tenant_id, debtor_id, kind)


async def refresh_debtor(session: AsyncSession, tenant_id: int, debtor_id: int,
                         kind: str = "obligation") -> None:
    """After a money change: the whole chain of :mod:`cartera.changes` (balances, promises
    and plans, placement, strategy plan) in the caller's transaction, which holds the
    debtor's money lock (:func:`cartera.portfolio.locks.lock_debtors`) from before it read
    their money."""
    await lock_debtors(session, tenant_id, [debtor_id])
    await changes.debtor_changed(session, tenant_id, debtor_id, kind)


# --- portfolios -------------------------------------------------------------------------

async def create_portfolio(session: AsyncSession, actor: Actor,
                           data: schemas.PortfolioCreate) -> Portfolio:
    portfolio = Portfolio(tenant_id=actor.tenant_id, code=data.code, name=data.name,
                          description=data.description)
    session.add(portfolio)
    await _flush_unique(session, f"a portfolio with code {data.code!r} exists", "code")
    audit.record(session, actor, "portfolio.created", "portfolio", portfolio.id, _changes(data))
    return portfolio


async def get_portfolio(session: AsyncSession, portfolio_id: int) -> Portfolio:
    return await get_owned(session, Portfolio, portfolio_id, session.info["tenant_id"],
                           what="portfolio")


async def update_portfolio(session: AsyncSession, actor: Actor, portfolio_id: int,
                           data: schemas.PortfolioUpdate) -> Portfolio:
    portfolio = await get_portfolio(session, portfolio_id)
    changes = _changes(data)
    for key, value in changes.items():
        setattr(portfolio, key, value)
    await session.flush()
    audit.record(session, actor, "portfolio.updated", "portfolio", portfolio.id, changes)
    return portfolio


def portfolio_out(p: Portfolio) -> schemas.PortfolioOut:
    return schemas.PortfolioOut(id=p.id, code=p.code, name=p.name, description=p.description,
                                created_at=p.created_at, updated_at=p.updated_at)


# --- debtors ----------------------------------------------------------------------------

async def _flush_unique(session: AsyncSession, message: str, param: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(message, code="already_exists", param=param) from None


def _contact_point(tenant_id: int, debtor: Debtor, data: schemas.ContactPointIn,
                   param: str) -> ContactPoint:
    return ContactPoint(
        tenant_id=tenant_id, debtor_id=debtor.id, kind=data.kind,
        value=validation.contact_value(data.kind, data.value, debtor.country, f"{param}.value"),
        label=data.label, consent=data.consent, opted_out_channels=list(data.opted_out_channels),
        origin=data.origin, preferred=data.preferred,
    )


async def _related_party(session: AsyncSession, tenant_id: int, debtor: Debtor,
                         data: schemas.RelatedPartyIn, param: str) -> RelatedParty:
    if data.related_debtor_id is not None:
        await get_debtor(session, data.related_debtor_id, param=f"{param}.related_debtor_id")
    return RelatedParty(
        tenant_id=tenant_id, debtor_id=debtor.id, role=data.role, name=data.name,
        national_id=data.national_id,
        phone=(validation.phone(data.phone, debtor.country, f"{param}.phone")
               if data.phone else None),
        email=validation.email(data.email, f"{param}.email") if data.email else None,
        related_debtor_id=data.related_debtor_id,
    )


def _check_risk(score: int | None) -> None:
    if score is not None and not 0 <= score <= 1000:
        raise Invalid("risk_score must be between 0 and 1000", param="risk_score")


async def create_debtor(session: AsyncSession, actor: Actor,
                        data: schemas.DebtorCreate) -> Debtor:
    country = validation.country(data.country)
    subdivision = validation.subdivision(data.subdivision, country)
    _check_risk(data.risk_score)
    debtor = Debtor(
        tenant_id=actor.tenant_id, external_ref=data.external_ref, kind=data.kind,
        name=validation.name(data.name), national_id=data.national_id, country=country,
        subdivision=subdivision,
        timezone=validation.timezone(data.timezone, country, subdivision), zone=data.zone,
        risk_score=data.risk_score, attributes=dict(data.attributes),
    )
    session.add(debtor)
    await _flush_unique(session, f"a debtor with external_ref {data.external_ref!r} exists",
                        "external_ref")
    for i, cp in enumerate(data.contact_points):
        session.add(_contact_point(actor.tenant_id, debtor, cp, f"contact_points[{i}]"))
    for i, rp in enumerate(data.related_parties):
        session.add(await _related_party(session, actor.tenant_id, debtor, rp,
                                         f"related_parties[{i}]"))
    for tag in sorted(set(data.tags)):
        session.add(DebtorTag(tenant_id=actor.tenant_id, debtor_id=debtor.id, tag=tag))
    await _flush_unique(session, "duplicate contact point", "contact_points")
    audit.record(session, actor, "debtor.created", "debtor", debtor.id, _changes(data))
    return debtor


async def get_debtor(session: AsyncSession, debtor_id: int, *, param: str | None = None) -> Debtor:
    debtor = await session.get(Debtor, debtor_id)
    if debtor is None or debtor.tenant_id != session.info["tenant_id"]:
        if param:
            raise Invalid(f"debtor {debtor_id} does not exist", code="unknown_debtor", param=param)
        raise NotFound(f"debtor {debtor_id} not found")
    return debtor


async def update_debtor(session: AsyncSession, actor: Actor, debtor_id: int,
                        data: schemas.DebtorUpdate) -> Debtor:
    debtor = await get_debtor(session, debtor_id)
    changes = _changes(data)
    tags = changes.pop("tags", None)
    if "name" in changes:
        validation.name(changes["name"])
    if "country" in changes:
        changes["country"] = validation.country(changes["country"])
    country = changes.get("country", debtor.country)
    if "subdivision" in changes or "country" in changes:
        changes["subdivision"] = validation.subdivision(
            changes.get("subdivision", debtor.subdivision), country)
    if "timezone" in changes:
        changes["timezone"] = validation.timezone(changes["timezone"], country, None)
    if "risk_score" in changes:
        _check_risk(changes["risk_score"])
    for key, value in changes.items():
        setattr(debtor, key, value)
    if tags is not None:
        await session.execute(delete(DebtorTag).where(DebtorTag.debtor_id == debtor.id))
        for tag in sorted(set(tags)):
            session.add(DebtorTag(tenant_id=actor.tenant_id, debtor_id=debtor.id, tag=tag))
        changes["tags"] = tags
    await session.flush()
    await resegment_debtor(session, actor.tenant_id, debtor.id)
    audit.record(session, actor, "debtor.updated", "debtor", debtor.id, changes)
    return debtor


async def delete_debtor(session: AsyncSession, actor: Actor, debtor_id: int) -> None:
    debtor = await get_debtor(session, debtor_id)
    # Deleting cascades to the debtor's money: wait for a money write in flight, then look.
    await lock_debtors(session, actor.tenant_id, [debtor.id])
    has_money = await session.scalar(select(exists().where(Obligation.debtor_id == debtor.id)))
    if has_money:
        raise Conflict("a debtor with obligations cannot be deleted", code="debtor_has_obligations")
    await changes.debtor_changed(session, actor.tenant_id, debtor.id, "deleted")
    await session.delete(debtor)
    audit.record(session, actor, "debtor.deleted", "debtor", debtor_id, {})


async def add_contact_point(session: AsyncSession, actor: Actor, debtor_id: int,
                            data: schemas.ContactPointIn) -> ContactPoint:
    debtor = await get_debtor(session, debtor_id)
    cp = _contact_point(actor.tenant_id, debtor, data, "value")
    session.add(cp)
    await _flush_unique(session, "this debtor already has that contact point", "value")
    await resegment_debtor(session, actor.tenant_id, debtor.id)
    audit.record(session, actor, "contact_point.created", "debtor", debtor.id,
                 {"contact_point_id": cp.id, **_changes(data)})
    return cp


async def update_contact_point(session: AsyncSession, actor: Actor, debtor_id: int,
                               contact_point_id: int,
                               data: schemas.ContactPointUpdate) -> ContactPoint:
    cp = await _contact_point_of(session, debtor_id, contact_point_id)
    changes = _changes(data)
    for key, value in changes.items():
        setattr(cp, key, value)
    await resegment_debtor(session, actor.tenant_id, debtor_id)
    audit.record(session, actor, "contact_point.updated", "debtor", debtor_id,
                 {"contact_point_id": cp.id, **changes})
    return cp


async def delete_contact_point(session: AsyncSession, actor: Actor, debtor_id: int,
                               contact_point_id: int) -> None:
    cp = await _contact_point_of(session, debtor_id, contact_point_id)
    await session.delete(cp)
    await resegment_debtor(session, actor.tenant_id, debtor_id)
    audit.record(session, actor, "contact_point.deleted", "debtor", debtor_id,
                 {"contact_point_id": contact_point_id})


async def lift_suppression(session: AsyncSession, actor: Actor, debtor_id: int,
                           contact_point_id: int, channel: str) -> ContactPoint:
    """Make the contact point usable again for ``channel`` after a provider suppressed it
    (the debtor fixed the mailbox, the number changed hands). Only this contact point:
    other points reaching the same address keep theirs. Audited with the suppression that
    was lifted; 404 ``suppression_not_found`` when the channel is not suppressed there."""
    cp = await _contact_point_of(session, debtor_id, contact_point_id)
    current = dict(cp.suppressions or {})
    lifted = current.pop(channel, None)
    if lifted is None:
        raise NotFound(f"contact point {contact_point_id} is not suppressed for {channel!r}",
                       code="suppression_not_found", param="channel")
    cp.suppressions = current
    await resegment_debtor(session, actor.tenant_id, debtor_id)
    audit.record(session, actor, "contact_point.suppression_lifted", "debtor", debtor_id,
                 {"contact_point_id": cp.id, "channel": channel, "lifted": lifted})
    return cp


async def _contact_point_of(session: AsyncSession, debtor_id: int, cp_id: int) -> ContactPoint:
    await get_debtor(session, debtor_id)
    cp = await session.get(ContactPoint, cp_id)
    if cp is None or cp.debtor_id != debtor_id:
        raise NotFound(f"contact point {cp_id} not found on debtor {debtor_id}")
    return cp


async def add_related_party(session: AsyncSession, actor: Actor, debtor_id: int,
                            data: schemas.RelatedPartyIn) -> RelatedParty:
    debtor = await get_debtor(session, debtor_id)
    rp = await _related_party(session, actor.tenant_id, debtor, data, "related_party")
    session.add(rp)
    await session.flush()
    audit.record(session, actor, "related_party.created", "debtor", debtor.id,
                 {"related_party_id": rp.id, **_changes(data)})
    return rp


async def delete_related_party(session: AsyncSession, actor: Actor, debtor_id: int,
                               related_party_id: int) -> None:
    await get_debtor(session, debtor_id)
    rp = await session.get(RelatedParty, related_party_id)
    if rp is None or rp.debtor_id != debtor_id:
        raise NotFound(f"related party {related_party_id} not found on debtor {debtor_id}")
    await session.delete(rp)
    audit.record(session, actor, "related_party.deleted", "debtor", debtor_id,
                 {"related_party_id": related_party_id, "role": rp.role})


async def debtor_out(session: AsyncSession, debtors: list[Debtor]) -> list[schemas.DebtorOut]:
    """Debtors with their children, segment and stage, loaded in four queries whatever the
    page size."""
    ids = [d.id for d in debtors]
    cps: dict[int, list[schemas.ContactPointOut]] = defaultdict(list)
    rps: dict[int, list[schemas.RelatedPartyOut]] = defaultdict(list)
    tags: dict[int, list[str]] = defaultdict(list)
    placed: dict[int, tuple[str | None, str | None]] = {}
    if ids:
        placed = await _placement_codes(session, ids)
        # Plain rows, not ORM objects: a read path that runs on every debtor request.
        cp = ContactPoint
        for r in await session.execute(
            select(cp.debtor_id, cp.id, cp.kind, cp.value, cp.label, cp.consent,
                   cp.opted_out_channels, cp.origin, cp.preferred, cp.suppressions)
            .where(cp.debtor_id.in_(ids)).order_by(cp.id)
        ):
            cps[r.debtor_id].append(schemas.ContactPointOut(
                id=r.id, kind=r.kind, value=r.value, label=r.label, consent=r.consent,
                opted_out_channels=list(r.opted_out_channels), origin=r.origin,
                preferred=r.preferred,
                suppressions=msgspec.convert(r.suppressions or {},
                                             dict[str, schemas.Suppression])))
        rp = RelatedParty
        for p in await session.execute(
            select(rp.debtor_id, rp.id, rp.role, rp.name, rp.national_id, rp.phone, rp.email,
                   rp.related_debtor_id)
            .where(rp.debtor_id.in_(ids)).order_by(rp.id)
        ):
            rps[p.debtor_id].append(schemas.RelatedPartyOut(
                id=p.id, role=p.role, name=p.name, national_id=p.national_id, phone=p.phone,
                email=p.email, related_debtor_id=p.related_debtor_id))
        for debtor_id, tag in await session.execute(
            select(DebtorTag.debtor_id, DebtorTag.tag).where(DebtorTag.debtor_id.in_(ids))
            .order_by(DebtorTag.tag)
        ):
            tags[debtor_id].append(tag)
    return [
        schemas.DebtorOut(
            id=d.id, external_ref=d.external_ref, kind=cast(DebtorKind, d.kind), name=d.name,
            national_id=d.national_id, country=d.country, subdivision=d.subdivision,
            timezone=d.timezone, zone=d.zone, risk_score=d.risk_score, tags=tags[d.id],
            attributes=dict(d.attributes), contact_points=cps[d.id], related_parties=rps[d.id],
            segment=placed.get(d.id, (None, None))[0], stage=placed.get(d.id, (None, None))[1],
            created_at=d.created_at, updated_at=d.updated_at)
        for d in debtors
    ]


async def _placement_codes(session: AsyncSession,
                           ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """(segment code, stage code) of the placed debtors among ``ids``."""
    rows = await session.execute(
        select(Placement.debtor_id, Segment.code, Stage.code)
        .outerjoin(Segment, Segment.id == Placement.segment_id)
        .outerjoin(Stage, Stage.id == Placement.stage_id)
        .where(Placement.tenant_id == session.info["tenant_id"], Placement.debtor_id.in_(ids)))
    return {int(d): (seg, stage) for d, seg, stage in rows}


async def placement_values(session: AsyncSession, tenant_id: int, segment: str | None,
                           stage: str | None) -> dict[str, int]:
    """The ids of the segment / stage codes a list filters by (``segment_id``,
    ``stage_id``); 422 naming the parameter for a code the tenant never had."""
    values: dict[str, int] = {}
    for param, code, model in (("segment", segment, Segment), ("stage", stage, Stage)):
        if code is None:
            continue
        found = await session.scalar(select(model.id).where(model.tenant_id == tenant_id,
                                                           model.code == code))
        if found is None:
            raise Invalid(f"no {param} with code {code!r}", code=f"unknown_{param}",
                          param=param)
        values[f"{param}_id"] = found
    return values


def _bound(names: Any, name: str) -> Any:
    """The bind parameter ``name``: with its value when ``names`` maps names to values (a
    statement run as it is), without when it only names them (a statement kept per shape,
    run with each request's values)."""
    return bindparam(name, names[name]) if isinstance(names, dict) else bindparam(name)


def placement_condition(names: Any, tenant: Any) -> ColumnElement[bool] | None:
    """The condition "the debtor is placed in segment ``:segment_id`` / stage ``:stage_id``"
    (those of ``names`` that are given), or None without either."""
    cond: list[ColumnElement[bool]] = []
    if "segment_id" in names:
        cond.append(Placement.segment_id == _bound(names, "segment_id"))
    if "stage_id" in names:
        cond.append(Placement.stage_id == _bound(names, "stage_id"))
    if not cond:
        return None
    return exists().where(Placement.debtor_id == Debtor.id, Placement.tenant_id == tenant, *cond)


async def placement_filter(session: AsyncSession, tenant_id: int, segment: str | None,
                           stage: str | None) -> ColumnElement[bool] | None:
    """The condition "the debtor is placed in segment ``segment`` / stage ``stage``" (codes;
    422 naming the parameter for a code the tenant never had), or None without either."""
    values = await placement_values(session, tenant_id, segment, stage)
    return placement_condition(values, tenant_id)


_NOT_ID = re.compile(r"[\s.\-]")


def search_phones(text: str, country: str) -> list[str]:
    """The E.164 forms a searched phone may be stored as: read in the tenant's country, and
    as an international number (``+51 987 654 321`` and ``987654321`` give the same)."""
    digits = re.sub(r"\D", "", text)
    if len(digits) < 6:
        return []
    found = set()
    for raw, region in ((text, country), ("+" + digits, None)):
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


def search_values(q: str, country: str) -> dict[str, str]:
    """The bound values of :func:`search_condition` for ``q``, sealed as the columns store
    them, under every live master key (:meth:`~cartera.crypto.PiiCipher.lookup_forms`: rows
    not yet resealed after a rotation are found too): ``q_name_N`` (the name, spaces
    collapsed), ``q_id_N`` (national id forms), ``q_cp_N`` (contact values). The values are
    sealed here, not by the column type: the list runs its SQL text on the driver."""
    text = q.strip()
    cipher = pii_cipher()
    values: dict[str, str] = {}

    def add(prefix: str, field: str, forms: Iterable[str]) -> None:
        sealed = [s for form in forms for s in cipher.lookup_forms(form, field)]
        values.update((f"{prefix}{i}", s) for i, s in enumerate(sealed))

    add("q_name_", "debtors.name", [" ".join(text.split())])
    ident = _NOT_ID.sub("", text)
    if ident:
        add("q_id_", "debtors.national_id", sorted({text, ident, ident.upper()}))
    contacts = search_phones(text, country)
    if "@" in text:
        contacts.extend(dict.fromkeys([text.lower(), text]))
    add("q_cp_", "contact_points.value", contacts)
    return values


def search_condition(names: Any) -> ColumnElement[bool]:
    """``q``: the whole name (exactly, spaces collapsed), the national id (spaces, dots and
    dashes ignored), an e-mail or a phone of a contact point (normalised), as one OR; the
    parameters ``names`` (of :func:`search_values`, sealed values) are bound by name.

    Names, national ids and contact values are sealed at rest (deterministically), so ``q``
    matches them by equality only: no part of a name, no case folding in SQL."""
    def sealed(prefix: str, column: Any) -> ColumnElement[bool] | None:
        bound = [_bound(names, n) for n in names if n.startswith(prefix)]
        return type_coerce(column, Text).in_(bound) if bound else None

    conditions = [c for c in (sealed("q_name_", Debtor.name),
                              sealed("q_id_", Debtor.national_id)) if c is not None]
    contacts = sealed("q_cp_", ContactPoint.value)
    if contacts is not None:
        conditions.append(exists().where(ContactPoint.tenant_id == Debtor.tenant_id,
                                         ContactPoint.debtor_id == Debtor.id, contacts))
    return or_(*conditions)


def debtor_search(q: str, country: str) -> ColumnElement[bool]:
    """:func:`search_condition` with ``q``'s values bound."""
    return search_condition(search_values(q, country))


def filter_values(*, as_of: date, zone: str | None = None, country: str | None = None,
                  tag: list[str] | None = None, portfolio_id: int | None = None,
                  external_ref: str | None = None, dpd_min: int | None = None,
                  dpd_max: int | None = None, currency: str | None = None) -> dict[str, Any]:
    """The bound values of the list's filters by parameter name (only those given), for
    :func:`filter_conditions`; ``balance`` (None) marks the summary's EXISTS, the days past
    due given as date bounds (``dpd_min_date``, ``dpd_max_date``)."""
    values: dict[str, Any] = {}
    if zone is not None:
        values["zone"] = zone
    if country is not None:
        values["country"] = country.upper()
    if external_ref is not None:
        values["external_ref"] = external_ref
    for i, t in enumerate(tag or []):
        values[f"tag_{i}"] = t
    if portfolio_id is not None:
        values["portfolio_id"] = portfolio_id
    if dpd_min is not None or dpd_max is not None or currency is not None:
        values["balance"] = None
        if currency is not None:
            values["currency"] = currency
        if dpd_min is not None and dpd_min > 0:
            values["dpd_min_date"] = as_of - timedelta(days=dpd_min)
        if dpd_max is not None:
            values["dpd_max_date"] = as_of - timedelta(days=dpd_max)
    return values


def filter_conditions(names: Any, tenant: Any) -> list[ColumnElement[bool]]:
    """The WHERE terms of the filters ``names`` (of :func:`filter_values`), bound by name;
    ``tenant`` is the tenant id or its bind parameter."""
    cond: list[ColumnElement[bool]] = []
    if "zone" in names:
        cond.append(Debtor.zone == _bound(names, "zone"))
    if "country" in names:
        cond.append(Debtor.country == _bound(names, "country"))
    if "external_ref" in names:
        cond.append(Debtor.external_ref == _bound(names, "external_ref"))
    for name in names:
        if name.startswith("tag_"):
            cond.append(exists().where(DebtorTag.debtor_id == Debtor.id,
                                       DebtorTag.tag == _bound(names, name)))
    if "portfolio_id" in names:
        cond.append(exists().where(Obligation.debtor_id == Debtor.id,
                                   Obligation.portfolio_id == _bound(names, "portfolio_id")))
    if "balance" in names:
        # Days past due come from the summary's oldest unpaid due date (as date bounds).
        due = DebtorBalance.oldest_unpaid_due_date
        balance = [DebtorBalance.debtor_id == Debtor.id, DebtorBalance.tenant_id == tenant]
        if "currency" in names:
            balance.append(DebtorBalance.currency == _bound(names, "currency"))
        if "dpd_min_date" in names:
            balance.append(due <= _bound(names, "dpd_min_date"))
        if "dpd_max_date" in names:
            balance.append(due.is_(None) | (due >= _bound(names, "dpd_max_date")))
        # A subplan per debtor the page reaches (OFFSET 0 keeps PostgreSQL from turning the
        # EXISTS into a join): a page of 50 stops after a few hundred probes of the
        # summary's key, where the merge join the generic plan picks would read the
        # summaries from the tenant's first debtor up to the page's last.
        cond.append(select(literal_column("1")).where(*balance)
                    .offset(literal_column("0")).exists())
    return cond


# --- obligations ------------------------------------------------------------------------

async def _resolve_debtor(session: AsyncSession, data: schemas.ObligationCreate) -> Debtor:
    if data.debtor_id is not None:
        return await get_debtor(session, data.debtor_id, param="debtor_id")
    if data.debtor_external_ref is not None:
        debtor = await session.scalar(
            select(Debtor).where(Debtor.external_ref == data.debtor_external_ref))
        if debtor is None:
            raise Invalid(f"no debtor with external_ref {data.debtor_external_ref!r}",
                          code="unknown_debtor", param="debtor_external_ref")
        return debtor
    raise Invalid("give debtor_id or debtor_external_ref", code="missing_debtor", param="debtor_id")


def parse_amount(value: str, currency: str, param: str) -> int:
    try:
        return money.to_minor(value, currency)
    except money.MoneyError as exc:
        raise Invalid(str(exc), code=exc.code, param=param) from None


def check_currency(currency: str, param: str = "currency") -> None:
    if not money.is_currency(currency):
        raise Invalid(f"{currency!r} is not an ISO 4217 currency", code="unknown_currency",
                      param=param)


async def create_obligation(session: AsyncSession, actor: Actor,
                            data: schemas.ObligationCreate) -> Obligation:
    check_currency(data.currency)
    debtor = await _resolve_debtor(session, data)
    await lock_debtors(session, actor.tenant_id, [debtor.id])
    original = parse_amount(data.original_amount, data.currency, "original_amount")
    outstanding = original if data.outstanding_amount is None else parse_amount(
        data.outstanding_amount, data.currency, "outstanding_amount")
    if outstanding > original:
        raise Invalid("outstanding_amount cannot exceed original_amount",
                      code="outstanding_exceeds_original", param="outstanding_amount")
    if data.issue_date is not None and data.issue_date > data.due_date:
        raise Invalid("issue_date is after due_date", code="issue_after_due", param="issue_date")
    if data.portfolio_id is not None:
        await _portfolio_param(session, data.portfolio_id)
    obligation = Obligation(
        tenant_id=actor.tenant_id, external_ref=data.external_ref, debtor_id=debtor.id,
        portfolio_id=data.portfolio_id, kind=data.kind, product=data.product,
        currency=data.currency, original_minor=original, prior_paid_minor=original - outstanding,
        outstanding_minor=outstanding, issue_date=data.issue_date, due_date=data.due_date,
        status=data.status,
    )
    session.add(obligation)
    await _flush_unique(session, f"an obligation with external_ref {data.external_ref!r} exists",
                        "external_ref")
    await refresh_debtor(session, actor.tenant_id, debtor.id)
    await session.refresh(obligation)
    audit.record(session, actor, "obligation.created", "obligation", obligation.id,
                 _changes(data))
    return obligation


async def _portfolio_param(session: AsyncSession, portfolio_id: int) -> None:
    found = await session.get(Portfolio, portfolio_id)
    if found is None or found.tenant_id != session.info["tenant_id"]:
        raise Invalid(f"portfolio {portfolio_id} does not exist", code="unknown_portfolio",
                      param="portfolio_id")


async def get_obligation(session: AsyncSession, obligation_id: int) -> Obligation:
    return await get_owned(session, Obligation, obligation_id, session.info["tenant_id"],
                           what="obligation")


async def update_obligation(session: AsyncSession, actor: Actor, obligation_id: int,
                            data: schemas.ObligationUpdate) -> Obligation:
    obligation = await get_obligation(session, obligation_id)
    await lock_debtors(session, actor.tenant_id, [obligation.debtor_id])
    await session.refresh(obligation)  # as the writer before us left it
    changes = _changes(data)
    if changes.get("portfolio_id") is not None:
        await _portfolio_param(session, changes["portfolio_id"])
    if changes.get("status") == "paid":
        raise Invalid("an obligation becomes paid by payments or credit notes, not by hand",
                      code="status_not_settable", param="status")
    if "status" in changes and changes["status"] == "open" and obligation.status == "paid":
        changes.pop("status")
    for key in changes:  # the typed value (``changes`` is JSON for the audit: dates as text)
        setattr(obligation, key, getattr(data, key))
    await session.flush()
    await refresh_debtor(session, actor.tenant_id, obligation.debtor_id)
    await session.refresh(obligation)
    audit.record(session, actor, "obligation.updated", "obligation", obligation.id, changes)
    return obligation


def obligation_out(o: Obligation, as_of: date) -> schemas.ObligationOut:
    open_ = o.status == "open" and o.kind != "credit_note" and o.outstanding_minor > 0
    return schemas.ObligationOut(
        id=o.id, external_ref=o.external_ref, debtor_id=o.debtor_id, portfolio_id=o.portfolio_id,
        kind=cast(ObligationKind, o.kind), product=o.product, currency=o.currency,
        original_amount=money.from_minor(o.original_minor, o.currency),
        outstanding_amount=money.from_minor(o.outstanding_minor, o.currency),
        issue_date=o.issue_date, due_date=o.due_date, status=cast(ObligationStatus, o.status),
        days_past_due=aging.days_past_due(o.due_date, as_of) if open_ else 0,
        created_at=o.created_at, updated_at=o.updated_at)


# --- balance and timeline ---------------------------------------------------------------

async def debtor_balance(session: AsyncSession, debtor_id: int,
                         as_of: date) -> schemas.DebtorBalanceOut:
    """The debtor's balance per currency as of a date, straight from the obligations and
    payments (:func:`cartera.portfolio.summary.computed`); nothing is written."""
    debtor = await get_debtor(session, debtor_id)
    bt = summary.computed(debtor.tenant_id, as_of, debtor.id).subquery("bt")
    rows = (await session.execute(select(bt).order_by(bt.c.currency))).all()
    return schemas.DebtorBalanceOut(debtor_id=debtor_id, as_of=as_of,
                                    balances=[_currency_balance(b, as_of) for b in rows])


async def debtor_balances(session: AsyncSession, tenant_id: int, debtor_ids: list[int],
                          as_of: date) -> dict[int, schemas.DebtorBalanceOut]:
    """:func:`debtor_balance` of a page of debtors in one statement (``expand=balance``)."""
    out = {i: schemas.DebtorBalanceOut(debtor_id=i, as_of=as_of, balances=[])
           for i in debtor_ids}
    if not debtor_ids:
        return out
    bt = summary.computed(tenant_id, as_of, within=debtor_ids).subquery("bt")
    for b in (await session.execute(select(bt).order_by(bt.c.debtor_id, bt.c.currency))).all():
        out[b.debtor_id].balances.append(_currency_balance(b, as_of))
    return out


def _currency_balance(b: Any, as_of: date) -> schemas.CurrencyBalance:
    dpd = aging.days_past_due(b.oldest_unpaid_due_date, as_of)
    return schemas.CurrencyBalance(
        currency=b.currency,
        outstanding_amount=money.from_minor(b.outstanding_minor, b.currency),
        overdue_amount=money.from_minor(b.overdue_minor, b.currency),
        unapplied_credit=money.from_minor(b.unapplied_credit_minor, b.currency),
        open_obligations=b.open_count, oldest_unpaid_due_date=b.oldest_unpaid_due_date,
        days_past_due=dpd, aging_bucket=aging.bucket(dpd),
        last_payment_date=b.last_payment_date)


async def timeline(session: AsyncSession, debtor_id: int,
                   limit: int) -> list[schemas.TimelineEntry]:
    """Newest first: obligations, payments, interactions and every audited change."""
    await get_debtor(session, debtor_id)
    entries: list[schemas.TimelineEntry] = []
    for o in await session.scalars(select(Obligation).where(Obligation.debtor_id == debtor_id)
                                   .order_by(Obligation.created_at.desc()).limit(limit)):
        entries.append(schemas.TimelineEntry(
            at=o.created_at, kind=f"{o.kind}.loaded", resource_type="obligation",
            resource_id=str(o.id),
            summary=f"{o.kind} {o.external_ref}: {money.from_minor(o.original_minor, o.currency)}"
                    f" {o.currency} due {o.due_date.isoformat()}",
            detail={"status": o.status}))
    for p in await session.scalars(select(Payment).where(Payment.debtor_id == debtor_id)
                                   .order_by(Payment.created_at.desc()).limit(limit)):
        entries.append(schemas.TimelineEntry(
            at=p.reversed_at or p.created_at,
            kind="payment.reversed" if p.status == "reversed" else "payment.received",
            resource_type="payment", resource_id=str(p.id),
            summary=f"payment {money.from_minor(p.amount_minor, p.currency)} {p.currency} on "
                    f"{p.paid_on.isoformat()}", detail={"method": p.method}))
    for i in await session.scalars(select(Interaction).where(Interaction.debtor_id == debtor_id)
                                   .order_by(Interaction.id.desc()).limit(limit)):
        entries.append(schemas.TimelineEntry(
            at=i.created_at, kind=f"interaction.{i.direction}", resource_type="interaction",
            resource_id=str(i.id), summary=f"{i.channel} {i.direction}: {i.status}",
            detail={"channel": i.channel, "status": i.status}))
    for a in await session.scalars(select(AuditEntry).where(
            AuditEntry.resource_type == "debtor", AuditEntry.resource_id == str(debtor_id))
            .order_by(AuditEntry.id.desc()).limit(limit)):
        entries.append(schemas.TimelineEntry(
            at=a.at, kind=a.action, resource_type="debtor", resource_id=a.resource_id,
            summary=f"{a.action} by {a.actor}", detail=dict(a.changes)))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]
