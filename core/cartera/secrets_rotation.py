"""Re-sealing secrets at rest under the current master key (``cartera secrets rotate``).

Rotation: set the new key as ``CARTERA_MASTER_KEY`` and the old one in
``CARTERA_OLD_MASTER_KEYS``, run this command, then drop the old key. Every sealed value
(token-signing keys, integration secrets, webhook path tokens, webhook endpoints' signing
secrets, stored idempotent responses and the sealed payload columns of
:data:`SEALED_PAYLOADS`) is opened with whichever key sealed it and sealed again with the
new one, in one transaction.

Personal data (every :class:`~cartera.db.base.SealedText` column) is resealed in the same
transaction, in batches of rows by id: each batch is read as stored, the values not yet
under the new key are resealed in Python, and one statement per batch writes them back
(PostgreSQL: an ``UPDATE ... FROM unnest(...)``; SQLite: one executemany). Until it has run,
lookups match rows under either key (:func:`~cartera.db.base.sealed_in`,
:func:`cartera.portfolio.service.search_values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, LargeBinary, bindparam, column, select, table, text, update
from sqlalchemy import Text as SqlText
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.idempotency import body_context
from cartera.api.models import IdempotencyRecord
from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring, PiiCipher
from cartera.db.base import Base, SealedText, payload_context
from cartera.events.endpoints import secret_context
from cartera.events.models import WebhookEndpoint
from cartera.integrations.models import Integration
from cartera.integrations.service import reseal_webhook_token, secrets_context

SEALED_PAYLOADS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("webhook_deliveries", "id", ("url", "headers", "body")),
    ("webhook_events", "id", ("payload",)),
    ("interactions", "id", ("variables", "content", "failure_reason")),
    ("interaction_events", "id", ("detail",)),
    ("outbox_events", "seq", ("data_sealed",)),
    ("audit_log", "id", ("changes",)),
    ("reconciliation_exceptions", "id", ("provider_view",)),
    ("import_row_errors", "id", ("reason",)),
    ("erp_sync_row_errors", "id", ("reason",)),
)
"""Every sealed payload column (:class:`~cartera.db.base.SealedJson`, ``SealedBytes``,
``SealedString``) as
(table, primary key, columns); a column's field is ``table.column``."""

RESEAL_BATCH = 2000
"""Rows of one table read (one SELECT) and rewritten (one executemany UPDATE) at a time."""


async def reseal_payloads(session: AsyncSession, keyring: Keyring,
                          batch: int = RESEAL_BATCH) -> dict[str, int]:
    """Re-seal every sealed payload of :data:`SEALED_PAYLOADS` not sealed under
    ``keyring``'s primary key, a batch of rows at a time in primary-key order: one SELECT
    of the raw sealed bytes and one executemany UPDATE of the rows that had a value sealed
    under an old key (rows already under the primary key are not rewritten, so a second
    run rewrites nothing). Returns how many rows of each table were rewritten."""
    counts: dict[str, int] = {}
    for name, pk, columns in SEALED_PAYLOADS:
        t = table(name, column(pk), *(column(c, LargeBinary) for c in columns))
        contexts = {c: payload_context(f"{name}.{c}") for c in columns}
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
    import cartera.db.models  # noqa: F401  (every domain's tables registered)

    found: dict[str, list[str]] = {}
    for name, tbl in sorted(Base.metadata.tables.items()):
        cols = [c.name for c in tbl.columns if isinstance(c.type, SealedText)]
        if cols and "id" in tbl.columns:
            found[name] = cols
    return found


async def reseal_personal_data(session: AsyncSession, cipher: PiiCipher,
                               batch: int = 5000) -> int:
    """Reseal every personal data value not under ``cipher``'s primary key; returns how many
    rows changed. Rows are read ``batch`` at a time by id, as stored (no column type)."""
    conn = await session.connection()
    postgres = conn.dialect.name == "postgresql"
    changed = 0
    for name, cols in sealed_columns().items():
        tbl = table(name, column("id", BigInteger), *[column(c, SqlText) for c in cols])
        after = 0
        while True:
            rows = (await conn.execute(
                select(tbl.c.id, *[tbl.c[c] for c in cols]).where(tbl.c.id > after)
                .order_by(tbl.c.id).limit(batch))).all()
            if not rows:
                break
            after = rows[-1][0]
            moved = _resealed(cipher, name, cols, rows)
            if moved:
                changed += len(moved)
                await conn.execute(*_write(tbl, name, cols, moved, postgres))
    return changed


def _resealed(cipher: PiiCipher, name: str, cols: list[str],
              rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``rows`` with a value not under the primary key: (id, every column's
    value under the primary key)."""
    fields = [f"{name}.{c}" for c in cols]
    under = cipher.under_primary
    return [(row[0], *[v if v is None or under(v) else cipher.reseal(v, f)
                       for v, f in zip(row[1:], fields, strict=True)])
            for row in rows if any(v is not None and not under(v) for v in row[1:])]


def _write(tbl: Any, name: str, cols: list[str], moved: list[tuple[Any, ...]],
           postgres: bool) -> tuple[Any, Any]:
    """The statement and parameters writing ``moved`` back: one statement for the batch."""
    if postgres:
        arrays = ", ".join(f"CAST(:c{i} AS text[])" for i in range(len(cols)))
        sets = ", ".join(f"{c} = v.{c}" for c in cols)
        params: dict[str, list[Any]] = {"ids": [r[0] for r in moved]}
        params.update({f"c{i}": [r[i + 1] for r in moved] for i in range(len(cols))})
        return text(f"UPDATE {name} AS t SET {sets} FROM unnest(CAST(:ids AS bigint[]), "
                    f"{arrays}) AS v(id, {', '.join(cols)}) WHERE t.id = v.id"), params
    stmt = update(tbl).where(tbl.c.id == bindparam("_id")).values(
        {c: bindparam(f"_{c}") for c in cols})
    return stmt, [{"_id": r[0], **{f"_{c}": v for c, v in zip(cols, r[1:], strict=True)}}
                  for r in moved]
