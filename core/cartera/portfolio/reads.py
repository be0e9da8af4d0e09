"""The debtor read path of ``GET /v1/debtors/{id}`` and ``GET /v1/debtors``: one Core
statement builds every debtor of the answer, with its contact points, related parties and
tags aggregated as JSON arrays and its segment and stage joined, and msgspec Structs are made
straight from the rows.

No ORM object is loaded and no loader criterion is compiled: the statement runs on the
session's connection (so the tenant-scoping hook of :mod:`cartera.db.engine` does not see
it) and names ``tenant_id`` itself — on the debtor; every child row and the placement are
reached only through that debtor.

What it answers is exactly what :func:`cartera.portfolio.service.debtor_out` answers for the
same debtors: children in id order, tags in the database's order of ``tag``.

Personal data is sealed at rest (:class:`~cartera.db.base.SealedText`). The statements here
read it as stored — inside JSON aggregates, on a plain psycopg connection, as the JSON text
of a whole debtor — where the column type never opens it, so every statement selects the
sealed text (also the debtor's own columns: one rule for every path) and :func:`debtor_out`
and the list's decoder open it in Python with the process's cached cipher.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api import listing
from cartera.crypto import pii_cipher
from cartera.portfolio import documents, schemas, service
from cartera.portfolio.models import ContactPoint, Debtor, DebtorTag, RelatedParty
from cartera.segmentation.models import Placement, Segment, Stage
from cartera.tenants.models import Tenant
from cartera.types import DebtorKind

_cp = ContactPoint.__table__.c
_rp = RelatedParty.__table__.c
_tag = DebtorTag.__table__.c
_d = Debtor.__table__.c
DEBTOR_ID = _d.id
"""The id column the list paginates on (a Core column: cursors are read in the tenant)."""

# The JSON shapes of the aggregated children (one array per child, in column order).
_CP = list[tuple[int, str, str, str | None, str, list[str], str, Any,
                 dict[str, schemas.Suppression]]]
_RP = list[tuple[int, str, str, str | None, str | None, str | None, int | None]]
_cp_decoder = msgspec.json.Decoder(_CP)
# The sealed columns' fields (the associated data they are sealed with).
_NAME, _NATIONAL_ID = "debtors.name", "debtors.national_id"
_CP_VALUE = "contact_points.value"
_RP_NAME, _RP_NATIONAL_ID = "related_parties.name", "related_parties.national_id"
_RP_PHONE, _RP_EMAIL = "related_parties.phone", "related_parties.email"
_rp_decoder = msgspec.json.Decoder(_RP)
_tag_decoder = msgspec.json.Decoder(list[str])
_attributes_decoder = msgspec.json.Decoder(dict[str, Any])


def _aggregate(dialect: str, table: Any, columns: list[Any], order: Any,
               json_columns: tuple[str, ...] = ()) -> ColumnElement[Any]:
    """The JSON text of the array of ``columns`` rows (one row: an array, or the value for
    one column) of ``table``'s rows of the outer debtor, ``order`` first."""
    # By the debtor's id alone (its index): the debtor row is the tenant's, and a child
    # row's debtor is its tenant's (a tenant_id term here had the planner AND in the
    # tenant-wide index of each child table).
    where = (table.c.debtor_id == _d.id,)
    if dialect == "postgresql":
        item = columns[0] if len(columns) == 1 else func.json_build_array(*columns)
        agg: Any = func.coalesce(sql_cast(func.json_agg(aggregate_order_by(item, order)), Text),
                                 "[]")
    else:
        cols = [func.json(c) if c.name in json_columns else c for c in columns]
        agg = func.json_group_array(cols[0] if len(cols) == 1 else func.json_array(*cols))
    return select(agg).where(*where).correlate(Debtor.__table__).scalar_subquery()


def _children(dialect: str) -> list[ColumnElement[Any]]:
    return [
        _aggregate(dialect, ContactPoint.__table__,
                   [_cp.id, _cp.kind, _cp.value, _cp.label, _cp.consent,
                    _cp.opted_out_channels, _cp.origin, _cp.preferred, _cp.suppressions],
                   _cp.id, ("opted_out_channels", "suppressions")).label("cps"),
        _aggregate(dialect, RelatedParty.__table__,
                   [_rp.id, _rp.role, _rp.name, _rp.national_id, _rp.phone, _rp.email,
                    _rp.related_debtor_id], _rp.id).label("rps"),
        _aggregate(dialect, DebtorTag.__table__, [_tag.tag], _tag.tag).label("tags"),
    ]


_ROWS: dict[str, Select[Any]] = {}


def debtor_rows(dialect: str) -> Select[Any]:
    """Every column a :class:`~cartera.portfolio.schemas.DebtorOut` needs, one row a debtor
    (to be narrowed with WHERE on ``debtors`` and the tenant). Built once per dialect: a
    ``where()`` on it makes a new statement and leaves it as it is."""
    stmt = _ROWS.get(dialect)
    if stmt is None:
        stmt = _ROWS[dialect] = _debtor_rows(dialect)
    return stmt


def _debtor_rows(dialect: str) -> Select[Any]:
    # Aliased, so a filter's EXISTS on debtor_placements never correlates to this join.
    placement = Placement.__table__.alias("placed")
    segment = Segment.__table__.alias("placed_segment")
    stage = Stage.__table__.alias("placed_stage")
    attributes = sql_cast(_d.attributes, Text) if dialect == "postgresql" else _d.attributes
    return (
        select(_d.id, _d.external_ref, _d.kind, type_coerce(_d.name, Text).label("name"),
               type_coerce(_d.national_id, Text).label("national_id"), _d.country,
               _d.subdivision, _d.timezone, _d.zone, _d.risk_score,
               attributes.label("attributes"), _d.created_at, _d.updated_at,
               segment.c.code.label("segment"), stage.c.code.label("stage"),
               *_children(dialect))
        .select_from(Debtor.__table__)
        .outerjoin(placement, (placement.c.debtor_id == _d.id)
                   & (placement.c.tenant_id == _d.tenant_id))
        .outerjoin(segment, segment.c.id == placement.c.segment_id)
        .outerjoin(stage, stage.c.id == placement.c.stage_id)
    )


def debtor_out(row: Any, dialect: str) -> schemas.DebtorOut:
    """A row of :func:`debtor_rows` (personal data sealed, as stored) as the API's debtor
    (personal data opened)."""
    attributes = row.attributes
    if isinstance(attributes, str | bytes):
        attributes = _attributes_decoder.decode(attributes)
    opened = pii_cipher().open
    cps = [schemas.ContactPointOut(
        id=i, kind=cast(Any, kind), value=opened(value, _CP_VALUE), label=label,
        consent=cast(Any, consent), opted_out_channels=cast(Any, opted), origin=origin,
        preferred=bool(preferred), suppressions=sups)
        for i, kind, value, label, consent, opted, origin, preferred, sups
        in _cp_decoder.decode(row.cps)]
    rps = [schemas.RelatedPartyOut(
        id=i, role=role, name=opened(name, _RP_NAME),
        national_id=None if nid is None else opened(nid, _RP_NATIONAL_ID),
        phone=None if phone is None else opened(phone, _RP_PHONE),
        email=None if email is None else opened(email, _RP_EMAIL), related_debtor_id=related)
        for i, role, name, nid, phone, email, related in _rp_decoder.decode(row.rps)]
    tags = _tag_decoder.decode(row.tags)
    if dialect != "postgresql":  # SQLite has no ORDER BY in an aggregate (before 3.44)
        cps.sort(key=lambda c: c.id)
        rps.sort(key=lambda r: r.id)
        tags.sort()  # BINARY collation: code point order, as Python sorts
    return schemas.DebtorOut(
        id=row.id, external_ref=row.external_ref, kind=cast(DebtorKind, row.kind),
        name=opened(row.name, _NAME),
        national_id=None if row.national_id is None else opened(row.national_id, _NATIONAL_ID),
        country=row.country,
        subdivision=row.subdivision, timezone=row.timezone, zone=row.zone,
        risk_score=row.risk_score, tags=tags, attributes=attributes or {}, contact_points=cps,
        related_parties=rps, segment=row.segment, stage=row.stage, created_at=row.created_at,
        updated_at=row.updated_at)


_TENANT = select(Tenant.__table__.c.timezone, Tenant.__table__.c.country).where(
    Tenant.__table__.c.id == bindparam("tenant_id"))
_ONE: dict[str, Select[Any]] = {}


def _one(dialect: str) -> Select[Any]:
    """The one-debtor statement, built once per dialect (its SQL is then cached compiled)."""
    stmt = _ONE.get(dialect)
    if stmt is None:
        stmt = _ONE[dialect] = _debtor_rows(dialect).where(
            _d.id == bindparam("debtor_id"), _d.tenant_id == bindparam("tenant_id"))
    return stmt


async def read_debtor(session: AsyncSession, debtor_id: int) -> schemas.DebtorOut | None:
    """The caller's tenant's debtor ``debtor_id`` (None when it has none), in one statement."""
    conn = await session.connection()
    dialect = conn.dialect.name
    row = (await conn.execute(_one(dialect), {"debtor_id": debtor_id,
                                              "tenant_id": session.info["tenant_id"]})).first()
    return None if row is None else debtor_out(row, dialect)


_COLUMNS = ("id", "external_ref", "kind", "name", "national_id", "country",
                 "subdivision", "timezone", "zone", "risk_score", "attributes", "created_at",
            "updated_at", "segment", "stage", "cps", "rps", "tags")
"""The columns of :func:`debtor_rows`, in order."""


class _PlainRow:
    """A psycopg row of the one-debtor statement with its columns as attributes, the
    instants normalised as :class:`~cartera.db.base.UtcDateTime` reads them."""

    __slots__ = _COLUMNS
    created_at: datetime
    updated_at: datetime

    def __init__(self, values: tuple[Any, ...]) -> None:
        for name, value in zip(_COLUMNS, values, strict=True):
            setattr(self, name, value)
        self.created_at = self.created_at.astimezone(UTC)
        self.updated_at = self.updated_at.astimezone(UTC)


_PLAIN: tuple[str, dict[str, Any]] | None = None


def _plain_one() -> tuple[str, dict[str, Any]]:
    """The one-debtor statement as psycopg's SQL text and its constant parameters."""
    global _PLAIN
    if _PLAIN is None:
        from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

        compiled = _one("postgresql").compile(
            dialect=pg_psycopg.dialect())  # type: ignore[no-untyped-call]
        columns = [c.key for c in _one("postgresql").selected_columns]
        assert tuple(columns) == _COLUMNS, columns
        _PLAIN = (compiled.string, dict(compiled.params))
    return _PLAIN


async def read_debtor_plain(conn: Any, tenant_id: int,
                            debtor_id: int) -> schemas.DebtorOut | None:
    """:func:`read_debtor` on a plain psycopg connection (a
    :class:`~cartera.db.engine.ReadPool`'s): the same statement, without SQLAlchemy."""
    sql, params = _plain_one()
    cursor = await conn.execute(sql, {**params, "debtor_id": debtor_id,
                                      "tenant_id": tenant_id})
    values = await cursor.fetchone()
    return None if values is None else debtor_out(_PlainRow(values), "postgresql")


async def tenant_zone_country(session: AsyncSession, tenant_id: int) -> tuple[str, str]:
    """The tenant's time zone and country, in one plain statement."""
    conn = await session.connection()
    row = (await conn.execute(_TENANT, {"tenant_id": tenant_id})).first()
    return _zone_country(row)


def _zone_country(row: Any) -> tuple[str, str]:
    return (row[0] or "UTC", row[1]) if row is not None else ("UTC", "PE")


_PG_DIALECT: Any = None


def _pg_dialect() -> Any:
    """A PostgreSQL (psycopg) dialect to compile the plain connection's statements with."""
    global _PG_DIALECT
    if _PG_DIALECT is None:
        from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

        _PG_DIALECT = pg_psycopg.dialect()  # type: ignore[no-untyped-call]
    return _PG_DIALECT


_PLAIN_TENANT: str | None = None


async def tenant_zone_country_plain(conn: Any, tenant_id: int) -> tuple[str, str]:
    """:func:`tenant_zone_country` on a plain psycopg connection (a
    :class:`~cartera.db.engine.ReadPool`'s)."""
    global _PLAIN_TENANT
    if _PLAIN_TENANT is None:
        _PLAIN_TENANT = _TENANT.compile(dialect=_pg_dialect()).string
    cursor = await conn.execute(_PLAIN_TENANT, {"tenant_id": tenant_id})
    return _zone_country(await cursor.fetchone())



# --- the list ---------------------------------------------------------------------------
#
# A list request is one of few shapes (which filters, how many tags or search forms, which
# ranges and sort, a cursor or not); requests of one shape differ only in bound values. Its
# statement is built once per shape with named bind parameters, and on PostgreSQL compiled
# once too: each request runs the SQL text with its values (no statement built, no cache key
# computed), and psycopg prepares it on a connection after a few runs (no planning). On
# PostgreSQL each debtor is a JSON object of :class:`DebtorOut`'s fields and the page comes
# back as one text of them, decoded by msgspec straight into the Structs in one call (no
# Python loop over rows or children). The common list (no expand, segment or stage) runs on
# a plain connection of the read pool, as the one-debtor read does.


def _json_rows() -> Select[Any]:
    """PostgreSQL: ``id`` and ``doc``, the debtor as the JSON text of a DebtorOut: its kept
    body (:mod:`cartera.portfolio.documents`) when it has one, else computed, with its
    segment and stage.

    Body and placement are scalar subqueries of the page's rows, not joins: the statement
    joins only what its filters need, which halves its planning."""
    placement = Placement.__table__.alias("placed")
    segment = Segment.__table__.alias("placed_segment")
    stage = Stage.__table__.alias("placed_stage")
    docs = documents.DOCS

    def code(column: Any) -> Any:
        return func.coalesce(sql_cast(func.to_json(column), Text), literal_column("'null'"))

    def of_debtor(stmt: Select[Any]) -> Any:
        return stmt.correlate(Debtor.__table__).scalar_subquery()

    kept = of_debtor(select(docs.c.body).where(docs.c.debtor_id == _d.id))
    # The object opens with segment and stage, then the body without its "{": one copy.
    # right(body, -1), not substr(body, 2): substr counts every character of a UTF-8 text
    # first, right only the one it skips.
    placed = of_debtor(
        select(literal_column("'{\"segment\":'").concat(code(segment.c.code))
               .concat(literal_column("',\"stage\":'")).concat(code(stage.c.code))
               .concat(literal_column("','")))
        .select_from(placement)
        .outerjoin(segment, segment.c.id == placement.c.segment_id)
        .outerjoin(stage, stage.c.id == placement.c.stage_id)
        .where(placement.c.debtor_id == _d.id, placement.c.tenant_id == _d.tenant_id))
    # COALESCE computes the body only for a debtor whose kept one is missing.
    body = func.coalesce(kept, documents.debtor_body())
    doc = (func.coalesce(placed, literal_column("'{\"segment\":null,\"stage\":null,'"))
           .concat(func.right(body, literal_column("-1"))))
    return select(_d.id, doc.label("doc")).select_from(Debtor.__table__)


class _Compiled:
    __slots__ = ("defaults", "sql", "stmt")

    def __init__(self, stmt: Select[Any], sql: str | None, defaults: dict[str, Any]) -> None:
        self.stmt, self.sql, self.defaults = stmt, sql, defaults


_LISTS: dict[tuple[Any, ...], _Compiled] = {}
_MAX_SHAPES = 512
_doc_decoder = msgspec.json.Decoder(schemas.DebtorOut)


def _list_statement(dialect: Any, names: tuple[str, ...], search: tuple[str, ...],
                    page: tuple[Any, ...]) -> _Compiled:
    key = (dialect.name, names, search, page)
    found = _LISTS.get(key)
    if found is not None:
        return found
    tenant: Any = bindparam("tenant_id")
    postgres = dialect.name == "postgresql"
    stmt = (_json_rows() if postgres else debtor_rows(dialect.name)).where(
        _d.tenant_id == tenant, *service.filter_conditions(names, tenant))
    if search:
        stmt = stmt.where(service.search_condition(search))
    placed = service.placement_condition(names, tenant)
    if placed is not None:
        stmt = stmt.where(placed)
    stmt = listing.paginate_bound(stmt, DEBTOR_ID, page)
    sql, defaults = None, {}
    if postgres:
        # The page as one text (its debtors' JSON, comma-separated, in the page's order):
        # one value to receive and decode instead of a row a debtor.
        keys = _page_keys(page)
        inner = stmt.add_columns(*(column.label(f"page_key_{i}")
                                   for i, (column, _) in enumerate(keys))).subquery("page")
        order = [inner.c[f"page_key_{i}"].desc() if descending
                 else inner.c[f"page_key_{i}"].asc() for i, (_, descending) in enumerate(keys)]
        stmt = select(func.string_agg(inner.c.doc,
                                      aggregate_order_by(literal_column("','"), *order)),
                      _zone_country_hold(tenant))
        compiled = stmt.compile(dialect=dialect)
        sql = compiled.string
        defaults = {k: v for k, v in compiled.params.items() if v is not None}
    if len(_LISTS) >= _MAX_SHAPES:
        _LISTS.clear()
    found = _LISTS[key] = _Compiled(stmt, sql, defaults)
    return found


def _zone_country_hold(tenant: Any) -> Any:
    """Whether the tenant's time zone and country are still the bound ``tenant_zone`` and
    ``tenant_country`` (those the list's values were computed from); NULL without the
    tenant."""
    t = Tenant.__table__
    zone = func.coalesce(t.c.timezone, literal_column("'UTC'"))
    return (select(and_(zone == bindparam("tenant_zone"),
                        t.c.country == bindparam("tenant_country")))
            .where(t.c.id == tenant).scalar_subquery())


def _page_keys(page: tuple[Any, ...]) -> list[tuple[Any, bool]]:
    """The columns and directions a :func:`listing.page_values` shape orders the page by
    (as :func:`listing.paginate_bound` does): the ``sort`` keys, then the id, all reversed
    when read backwards."""
    _, sort, _, backwards = page
    keys = [(DEBTOR_ID if key == "id" else _d[name], descending)
            for key, name, descending in sort]
    if not any(column is DEBTOR_ID for column, _ in keys):
        keys.append((DEBTOR_ID, False))
    return [(column, not descending) for column, descending in keys] if backwards else keys


async def list_debtors(session: AsyncSession, tenant_id: int, filters: dict[str, Any],
                       search: dict[str, Any], limit: int, starting_after: int | None,
                       zone_country: tuple[str, str]) -> list[Any]:
    """The page's rows (``limit + 1`` at most, in the list's order) of the tenant's debtors
    that pass ``filters`` (:func:`service.filter_values` and
    :func:`service.placement_values`) and ``search`` (:func:`service.search_values`),
    computed from the tenant's ``zone_country`` (:func:`tenant_zone_country`): on
    PostgreSQL :class:`DebtorOut` Structs, elsewhere rows for :func:`debtor_out`."""
    conn = await session.connection()
    compiled, params = _list_call(conn.dialect, tenant_id, filters, search, limit,
                                  starting_after, zone_country)
    if compiled.sql is None:
        return list((await conn.execute(compiled.stmt, params)).all())
    return _page_docs((await conn.exec_driver_sql(compiled.sql, params)).scalar())


ListValues = Callable[[str, str], tuple[dict[str, Any], dict[str, Any]]]
"""The filters and search of a list (as :func:`list_debtors` takes them) from the tenant's
time zone and country."""

_ZONE_COUNTRY: dict[int, tuple[str, str]] = {}
"""Each tenant's time zone and country as this process last read them (a hint that
:func:`list_debtors_plain` checks); emptied whole at :data:`_MAX_TENANTS`."""
_MAX_TENANTS = 4096


async def list_debtors_plain(conn: Any, tenant_id: int, values: ListValues, limit: int,
                             starting_after: int | None) -> list[schemas.DebtorOut]:
    """:func:`list_debtors` on PostgreSQL on a plain psycopg connection (a
    :class:`~cartera.db.engine.ReadPool`'s): the same statement, without SQLAlchemy, its
    filters and search from ``values``.

    One round trip, not two: the values come from the tenant's time zone and country as
    this process last read them, and the list's statement also says whether those still
    hold. When they do not (the tenant changed them, or this process has not read them),
    the tenant is read and the list run again."""
    hint = _ZONE_COUNTRY.get(tenant_id)
    if hint is not None:
        docs, held = await _plain_page(conn, tenant_id, values, limit, starting_after, hint)
        if held:
            return _page_docs(docs)
    hint = await tenant_zone_country_plain(conn, tenant_id)
    if len(_ZONE_COUNTRY) >= _MAX_TENANTS:
        _ZONE_COUNTRY.clear()
    _ZONE_COUNTRY[tenant_id] = hint
    docs, _ = await _plain_page(conn, tenant_id, values, limit, starting_after, hint)
    return _page_docs(docs)


async def _plain_page(conn: Any, tenant_id: int, values: ListValues, limit: int,
                      starting_after: int | None,
                      zone_country: tuple[str, str]) -> tuple[str | None, bool]:
    """The page's text and whether ``zone_country`` held when it was read."""
    filters, search = values(*zone_country)
    compiled, params = _list_call(_pg_dialect(), tenant_id, filters, search, limit,
                                  starting_after, zone_country)
    assert compiled.sql is not None
    cursor = await conn.execute(compiled.sql, params)
    row = await cursor.fetchone()
    return (None, False) if row is None else (row[0], bool(row[1]))


def _list_call(dialect: Any, tenant_id: int, filters: dict[str, Any], search: dict[str, Any],
               limit: int, starting_after: int | None,
               zone_country: tuple[str, str]) -> tuple[_Compiled, dict[str, Any]]:
    page, page_params = listing.page_values(limit, starting_after)
    compiled = _list_statement(dialect, tuple(filters), tuple(search), page)
    params = {**compiled.defaults, **filters, **search, **page_params, "tenant_id": tenant_id,
              "tenant_zone": zone_country[0], "tenant_country": zone_country[1]}
    params.pop("balance", None)
    return compiled, params


_sup_decoder = msgspec.json.Decoder(dict[str, schemas.Suppression])
_page_decoder = msgspec.json.Decoder(list[schemas.DebtorOut])
_raw_page_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def _page_docs(docs: str | None) -> list[schemas.DebtorOut]:
    """The page's text of the PostgreSQL list statement (the debtors' JSON of
    :func:`_json_rows`, comma-separated; None for no debtor) as the API's debtors."""
    if docs is None:
        return []
    opened = pii_cipher().open
    text = f"[{docs}]"
    try:
        return [_opened(out, opened) for out in _page_decoder.decode(text)]
    except msgspec.ValidationError:
        pass
    # A debtor the API's types would refuse: each debtor on its own (see _doc).
    return [_doc(bytes(raw).decode(), opened) for raw in _raw_page_decoder.decode(text)]


def _doc(doc: str, opened: Callable[[str, str], str]) -> schemas.DebtorOut:
    """The JSON text of :func:`_json_rows` (personal data sealed) as the API's debtor,
    ``opened`` opening its sealed values (:meth:`~cartera.crypto.PiiCipher.open`)."""
    try:
        return _opened(_doc_decoder.decode(doc), opened)
    except msgspec.ValidationError:
        pass
    # Stored values the API's types would refuse (attributes written outside the API, a
    # float): answered as they are, as the row-by-row read does.
    raw = msgspec.json.decode(doc)
    raw["contact_points"] = [schemas.ContactPointOut(**{
        **cp, "suppressions": _sup_decoder.decode(msgspec.json.encode(cp["suppressions"]))})
        for cp in raw["contact_points"]]
    raw["related_parties"] = [schemas.RelatedPartyOut(**rp) for rp in raw["related_parties"]]
    for name in ("created_at", "updated_at"):
        raw[name] = msgspec.convert(raw[name], datetime)
    return _opened(schemas.DebtorOut(**raw), opened)


def _opened(out: schemas.DebtorOut, opened: Callable[[str, str], str]) -> schemas.DebtorOut:
    """``out`` with its sealed personal data opened in place."""
    out.name = opened(out.name, _NAME)
    if out.national_id is not None:
        out.national_id = opened(out.national_id, _NATIONAL_ID)
    for cp in out.contact_points:
        cp.value = opened(cp.value, _CP_VALUE)
    for rp in out.related_parties:
        rp.name = opened(rp.name, _RP_NAME)
        if rp.national_id is not None:
            rp.national_id = opened(rp.national_id, _RP_NATIONAL_ID)
        if rp.phone is not None:
            rp.phone = opened(rp.phone, _RP_PHONE)
        if rp.email is not None:
            rp.email = opened(rp.email, _RP_EMAIL)
    return out
