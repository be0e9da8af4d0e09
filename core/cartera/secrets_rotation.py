"""Re-sealing secrets at rest under the current master key (``cartera secrets rotate``).

Rotation: set the new key as ``CARTERA_MASTER_KEY`` and the old one in
``CARTERA_OLD_MASTER_KEYS``, run this command, then drop the old key. Every sealed value
(token-signing keys, integration secrets, webhook path tokens, webhook endpoints' signing
secrets, stored idempotent responses and every sealed payload column) is opened with
whichever key sealed it and sealed again with the new one, in one transaction.

Personal data (every :class:`~cartera.db.base.SealedText` column) and sealed payloads (every
:class:`~cartera.db.base.SealedJson`, ``SealedBytes`` and ``SealedString`` column) are
found from the column types of the mapped tables (:func:`sealed_tables`), so a new sealed
column is resealed without being listed anywhere. They are resealed in the same
transaction, in batches of rows in primary-key order: each batch is read as stored, the
values not yet under the new key are resealed in Python, and the rows that changed are
written back by primary key (personal data on PostgreSQL: one ``UPDATE ... FROM
unnest(...)`` per batch; otherwise one executemany). Until it has run, lookups match rows
under either key (:func:`~cartera.db.base.sealed_in`,
:func:`cartera.portfolio.service.search_values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    MetaData,
    bindparam,
    column,
    select,
    table,
    text,
    update,
)
from sqlalchemy import Text as SqlText
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.idempotency import body_context
from cartera.api.models import IdempotencyRecord
from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring, PiiCipher
from cartera.db.base import (
    Base,
    SealedBytes,
    SealedJson,
    SealedString,
    SealedText,
    payload_context,
)
from cartera.events.endpoints import secret_context
from cartera.events.models import WebhookEndpoint
from cartera.integrations.models import Integration
from cartera.integrations.service import reseal_webhook_token, secrets_context

PAYLOAD_TYPES: tuple[type, ...] = (SealedJson, SealedBytes, SealedString)
"""The randomized sealed payload column types (:mod:`cartera.db.base`)."""


@dataclass(frozen=True)
class SealedTable:
    """A table's columns of one sealing kind, as :func:`sealed_tables` finds them."""

    name: str
    key: str
    """Its primary key column (one column: rows are read and rewritten by it)."""
    columns: tuple[str, ...]
    fields: tuple[str, ...]
    """Each column's ``field`` (its column type's): what the value is bound to."""


def sealed_tables(types: tuple[type, ...],
                  metadata: MetaData | None = None) -> list[SealedTable]:
    """Every table of ``metadata`` (default: every mapped table) with a column of one of
    ``types``, in table-name order: what a rotation must reseal, read from the column types
    so a new sealed column cannot be missed. ``RuntimeError`` for a table with such a column
    whose primary key is not a single column (its rows could not be rewritten one by one)."""
    if metadata is None:
        import cartera.db.models  # noqa: F401  (every domain's tables registered)

        metadata = Base.metadata
    found = []
    for name, tbl in sorted(metadata.tables.items()):
        cols = [c for c in tbl.columns if isinstance(c.type, types)]
        if not cols:
            continue
        key = list(tbl.primary_key.columns)
        if len(key) != 1:
            raise RuntimeError(f"{name} has sealed columns but no single-column primary key: "
                               "a rotation could not reseal it")
        found.append(SealedTable(name, key[0].name, tuple(c.name for c in cols),
                                 tuple(c.type.field for c in cols)))  # type: ignore[attr-defined]
    return found


def sealed_payloads(metadata: MetaData | None = None) -> list[SealedTable]:
    """Every sealed payload column (:data:`PAYLOAD_TYPES`) by table (:func:`sealed_tables`)."""
    return sealed_tables(PAYLOAD_TYPES, metadata)


RESEAL_BATCH = 2000
"""Rows of one table read (one SELECT) and rewritten (one executemany UPDATE) at a time."""


async def reseal_payloads(session: AsyncSession, keyring: Keyring,
                          batch: int = RESEAL_BATCH,
                          metadata: MetaData | None = None) -> dict[str, int]:
    """Re-seal every sealed payload of :func:`sealed_payloads` (of ``metadata``, default
    every mapped table) not sealed under ``keyring``'s primary key, a batch of rows at a
    time in primary-key order: one SELECT of the raw sealed bytes and one executemany
    UPDATE of the rows that had a value sealed under an old key (rows already under the
    primary key are not rewritten, so a second run rewrites nothing). Returns how many rows
    of each table were rewritten."""
    counts: dict[str, int] = {}
    for sealed in sealed_payloads(metadata):
        name, pk, columns = sealed.name, sealed.key, sealed.columns
        t = table(name, column(pk), *(column(c, LargeBinary) for c in columns))
        contexts = {c: payload_context(f) for c, f in zip(columns, sealed.fields, strict=True)}
        rewrite = (update(t).where(t.c[pk] == bindparam("b_pk"))
                   .values({c: bindparam(f"b_{c}", type_=LargeBinary) for c in columns}))
        after: Any = None
        counts[name] = 0
        while True:
            stmt = select(t.c[pk], *(t.c[c] for c in columns)).order_by(t.c[pk]).limit(batch)
            if after is not None:
                stmt = stmt.where(t.c[pk] > after)
            rows = (await session.execute(stmt)).all()
            if not rows:
                break
            after = rows[-1][0]
            changed = []
            for row in rows:
                values = dict(zip(columns, row[1:], strict=True))
                stale = [c for c, v in values.items()
                         if v is not None and not keyring.sealed_by_primary(bytes(v))]
                if stale:
                    changed.append({"b_pk": row[0], **{f"b_{c}": (
                        keyring.reseal(bytes(v), context=contexts[c]) if c in stale else v)
                        for c, v in values.items()}})
            if changed:
                await session.execute(rewrite, changed)
                counts[name] += len(changed)
            if len(rows) < batch:
                break
    return counts


async def reseal_all(session: AsyncSession, keyring: Keyring) -> dict[str, int]:
    """Re-seal every secret; returns how many of each kind were re-sealed."""
    keys = (await session.scalars(select(SigningKey))).all()
    for key in keys:
        key.private_key_encrypted = keyring.reseal(key.private_key_encrypted,
                                                   context=SIGNING_KEY_CONTEXT)
    integrations = (await session.scalars(select(Integration).where(
        Integration.secrets_sealed.is_not(None) | Integration.webhook_token_sealed.is_not(None)
    ))).all()
    for integration in integrations:
        if integration.secrets_sealed is not None:
            integration.secrets_sealed = keyring.reseal(
                integration.secrets_sealed, context=secrets_context(integration.tenant_id))
        reseal_webhook_token(integration, keyring)
    endpoints = (await session.scalars(select(WebhookEndpoint))).all()
    for endpoint in endpoints:
        context = secret_context(endpoint.tenant_id)
        endpoint.secret_sealed = keyring.reseal(endpoint.secret_sealed, context=context)
        if endpoint.previous_secret_sealed is not None:
            endpoint.previous_secret_sealed = keyring.reseal(endpoint.previous_secret_sealed,
                                                             context=context)
    responses = (await session.scalars(select(IdempotencyRecord).where(
        IdempotencyRecord.body.is_not(None)))).all()
    for response in responses:
        assert response.body is not None
        response.body = keyring.reseal(response.body, context=body_context(response))
    await session.flush()
    personal = await reseal_personal_data(session, PiiCipher(keyring.primary_key,
                                                             keyring.old_keys))
    payloads = await reseal_payloads(session, keyring)
    return {"signing_keys": len(keys), "integrations": len(integrations),
            "webhook_endpoints": len(endpoints), "idempotent_responses": len(responses),
            "personal_data_rows": personal, "sealed_payload_rows": sum(payloads.values())}


def sealed_columns() -> dict[str, list[str]]:
    """Table -> its :class:`~cartera.db.base.SealedText` columns, of every mapped table."""
    return {t.name: list(t.columns) for t in sealed_tables((SealedText,))}


async def reseal_personal_data(session: AsyncSession, cipher: PiiCipher,
                               batch: int = 5000, metadata: MetaData | None = None) -> int:
    """Reseal every personal data value (every :class:`~cartera.db.base.SealedText` column
    of ``metadata``, default every mapped table) not under ``cipher``'s primary key; returns
    how many rows changed. Rows are read ``batch`` at a time in primary-key order, as stored
    (no column type); the primary key is an integer."""
    conn = await session.connection()
    postgres = conn.dialect.name == "postgresql"
    changed = 0
    for sealed in sealed_tables((SealedText,), metadata):
        name, key, cols = sealed.name, sealed.key, list(sealed.columns)
        tbl = table(name, column(key, BigInteger), *[column(c, SqlText) for c in cols])
        after = 0
        while True:
            rows = (await conn.execute(
                select(tbl.c[key], *[tbl.c[c] for c in cols]).where(tbl.c[key] > after)
                .order_by(tbl.c[key]).limit(batch))).all()
            if not rows:
                break
            after = rows[-1][0]
            moved = _resealed(cipher, sealed.fields, rows)
            if moved:
                changed += len(moved)
                await conn.execute(*_write(tbl, name, key, cols, moved, postgres))
    return changed


def _resealed(cipher: PiiCipher, fields: Sequence[str],
              rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``rows`` with a value not under the primary key: (key, every column's
    value under the primary key)."""
    under = cipher.under_primary
    return [(row[0], *[v if v is None or under(v) else cipher.reseal(v, f)
                       for v, f in zip(row[1:], fields, strict=True)])
            for row in rows if any(v is not None and not under(v) for v in row[1:])]


def _write(tbl: Any, name: str, key: str, cols: list[str], moved: list[tuple[Any, ...]],
           postgres: bool) -> tuple[Any, Any]:
    """The statement and parameters writing ``moved`` back: one statement for the batch."""
    if postgres:
        arrays = ", ".join(f"CAST(:c{i} AS text[])" for i in range(len(cols)))
        sets = ", ".join(f"{c} = v.{c}" for c in cols)
        params: dict[str, list[Any]] = {"ids": [r[0] for r in moved]}
        params.update({f"c{i}": [r[i + 1] for r in moved] for i in range(len(cols))})
        return text(f"UPDATE {name} AS t SET {sets} FROM unnest(CAST(:ids AS bigint[]), "
                    f"{arrays}) AS v({key}, {', '.join(cols)}) WHERE t.{key} = v.{key}"), params
    stmt = update(tbl).where(tbl.c[key] == bindparam("_id")).values(
        {c: bindparam(f"_{c}") for c in cols})
    return stmt, [{"_id": r[0], **{f"_{c}": v for c, v in zip(cols, r[1:], strict=True)}}
                  for r in moved]
