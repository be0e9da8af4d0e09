"""The host's sync engine: pull an ERP connector's streams page by page into the portfolio.

A run (:func:`run_sync`, the ``erp_sync`` job) pulls the connector's streams in order,
``debtors``, ``open_items``, then ``payments`` when the connector serves it. For each page:

1. The connector is called **outside any database transaction** (through the plugin host:
   timeout, error capture, the host's egress rules).
2. The page's rows are mapped to the import's rows (an ERP customer is a ``debtor`` row,
   an open item an ``obligation`` row, an ERP payment a ``payment`` row, all by external
   reference) and validated with the import's rules (:func:`cartera.imports.rows.add_record`).
3. One transaction applies the page (consecutive pages merged up to :data:`APPLY_ROWS`
   rows: the transaction's fixed cost is paid per batch) with the import's set-based upsert
   (:func:`cartera.imports.pipeline.apply_chunk`), records its row errors (the connector's
   and the pipeline's), stores the stream's next cursor and the run's counts. A page is
   applied whole or not at all, and the cursor never runs ahead of or behind what is
   applied: a crash or a restart resumes at the first page not applied.

Faults. A failed call (ERP down, 5xx, timeout, an expired session the connector could not
renew, a page that repeats the one before it) applies nothing and keeps the cursor: the run
records the error, retries the call a few times with backoff, then gives the job back to
the runner, which runs it again later with a longer backoff (the run shows ``retrying``).
A bad row (malformed, an unknown currency, an amount with too many decimals) is a row
error; the page's other rows are applied and the cursor advances. A permanent failure (bad
credentials or config) ends the run ``failed``; the cursor stays for the next run.

Closing. An open item the ERP reports ``cleared`` arrives with open amount zero, so its
obligation becomes paid; ``cancelled`` cancels it. An item a *full* pull no longer returns
(deleted or closed in the ERP outside the window the connector reports closed items in) is
cancelled in Cartera at the end of that pull (``erp_sync_seen`` remembers what each pull saw).

Who owns what (conflicts):

* The ERP is the source of truth for **amounts and due dates**: every row it sends
  overwrites the obligation's original amount, paid-to-date, currency, issue and due dates.
* Cartera owns **contact data and collection state**: contact points from the ERP are added
  when new and never overwrite an existing one (consent, opt-outs and labels recorded in
  Cartera stay); a debtor's kind, subdivision, time zone, zone and risk score stay as
  Cartera has them once the debtor exists; an obligation Cartera marks ``disputed`` or
  ``written_off`` keeps that status while the ERP says it is open (the ERP cancelling it
  still cancels it).
* A payment **recorded in both** is matched, not doubled. What the ERP reports as paid on
  an item includes the payments Cartera posted there (``erp_item_payments``, written when
  a posting succeeds) and the ERP payments the ``payments`` stream brought in as Cartera
  payments; those amounts are subtracted from the ERP's paid-to-date before the upsert, so
  the Cartera payment is what settles the item. An ERP payment whose document is one
  Cartera posted (``ErpPostingResult.erp_document_id``) is not imported again. Known limit:
  a sync that reads an item in the moment between the ERP booking Cartera's post and the
  outbox recording it sees the item paid by the ERP and by the payment until the item next
  changes (or the next ``full`` run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cartera_sdk.erp import ErpDebtor, ErpOpenItem, ErpPayment, ErpRowError, Page
from cartera_sdk.errors import ProviderError
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from cartera import clock
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db.base import UtcDateTime
from cartera.erpsync.models import (
    ErpItemPayment,
    ErpPosting,
    ErpSyncCursor,
    ErpSyncRowError,
    ErpSyncRun,
    ErpSyncSeen,
    ErpSyncSettings,
)
from cartera.errors import tenant_facing
from cartera.imports import pipeline
from cartera.imports import rows as rowmod
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.plugins.host import EgressRefusedError, PluginCallError, PluginTimeout
from cartera.plugins.registry import current_host
from cartera.settings import get_settings
from cartera.tenants.models import Tenant

log = logging.getLogger("cartera.erpsync")

KIND = "erp_sync"
STREAMS = ("debtors", "open_items", "payments")
DEFAULT_PAGE_SIZE = 1000
APPLY_ROWS = 5000
"""Rows (at least) a page transaction applies: consecutive ERP pages are merged up to it."""
PULL_ATTEMPTS = 3
"""Tries of one page within a run before the job is given back to the runner."""
PULL_BACKOFF_SECONDS = 1.0
"""The first wait between those tries (then doubled); tests set it to 0."""
PAYMENT_METHOD = "erp"
"""``method`` of the payments the ``payments`` stream records (never posted back)."""

_OBLIGATION_KINDS = {"invoice": "invoice", "credit_note": "credit_note",
                     "debit_note": "debit_note", "installment": "installment",
                     "payment_on_account": "credit_note"}


class SyncFailed(Exception):
    """The run did not finish. ``retry``: transient (the run is ``retrying``); else for good."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


class _PullError(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


# --- mapping ERP rows to import rows -----------------------------------------------------

def _decimal(value: Decimal) -> str:
    return format(value, "f")


def debtor_record(d: ErpDebtor, default_country: str) -> dict[str, Any]:
    """An ERP customer as an import ``debtor`` row."""
    record: dict[str, Any] = {"type": "debtor", "external_ref": d.external_id, "name": d.name,
                              "country": (d.country or default_country).upper(),
                              "kind": "company"}
    if d.tax_id:
        record["national_id"] = d.tax_id
    if d.timezone:
        record["timezone"] = d.timezone
    contacts = [{"kind": kind, "value": value}
                for kind, value in (("email", d.email), ("phone", d.phone)) if value]
    if contacts:
        record["contact_points"] = contacts
    attributes = dict(d.attributes)
    if d.tax_id_type:
        attributes["tax_id_type"] = d.tax_id_type
    if d.credit_limit is not None:
        attributes["credit_limit"] = (f"{_decimal(d.credit_limit.amount)} "
                                      f"{d.credit_limit.currency}")
    if attributes:
        record["attributes"] = attributes
    return record


def obligation_record(item: ErpOpenItem) -> dict[str, Any]:
    """An ERP open item as an import ``obligation`` row (open amount zero: settled)."""
    return {"type": "obligation", "external_ref": item.external_id,
            "debtor_external_ref": item.debtor_external_id,
            "kind": _OBLIGATION_KINDS.get(item.kind, item.kind),
            "currency": item.original_amount.currency,
            "original_amount": _decimal(item.original_amount.amount),
            "outstanding_amount": _decimal(item.open_amount.amount),
            "issue_date": item.issue_date, "due_date": item.due_date,
            "status": "cancelled" if item.status == "cancelled" else "open"}


def payment_ref(integration_id: int, p: ErpPayment) -> str:
    """The Cartera ``external_ref`` of a payment the ERP recorded."""
    return f"erp{integration_id}:{p.external_id}"


def payment_record(integration_id: int, p: ErpPayment) -> dict[str, Any]:
    return {"type": "payment", "external_ref": payment_ref(integration_id, p),
            "debtor_external_ref": p.debtor_external_id, "currency": p.amount.currency,
            "amount": _decimal(p.amount.amount), "paid_on": p.value_date,
            "method": PAYMENT_METHOD, "reference": p.document_id[:200]}


# --- staged-row amendments (who owns what) -----------------------------------------------

_KEEP_DEBTOR_FIELDS = """
UPDATE import_stage_debtors SET (kind, subdivision, timezone, zone, risk_score) = (
    SELECT d.kind, d.subdivision, d.timezone, d.zone, d.risk_score FROM debtors d
    WHERE d.tenant_id = :t AND d.external_ref = import_stage_debtors.external_ref)
WHERE import_id = :stage AND external_ref IN (
    SELECT external_ref FROM import_stage_refs WHERE import_id = :stage AND existed)
"""
"""Cartera owns these once the debtor exists (the ERP does not know them)."""

_KEEP_COLLECTION_STATE = """
UPDATE import_stage_obligations SET status = (
    SELECT o.status FROM obligations o
    WHERE o.tenant_id = :t AND o.external_ref = import_stage_obligations.external_ref)
WHERE import_id = :stage AND status = 'open' AND EXISTS (
    SELECT 1 FROM obligations o WHERE o.tenant_id = :t
      AND o.external_ref = import_stage_obligations.external_ref
      AND o.status IN ('disputed', 'written_off'))
"""

_PAID_IN_CARTERA = """
SELECT coalesce(sum(l.amount_minor), 0) FROM erp_item_payments l
WHERE l.integration_id = :i AND l.external_ref = import_stage_obligations.external_ref
"""
_NOT_DOUBLE_PAID = f"""
UPDATE import_stage_obligations SET prior_paid_minor = CASE
    WHEN prior_paid_minor > ({_PAID_IN_CARTERA})
    THEN prior_paid_minor - ({_PAID_IN_CARTERA}) ELSE 0 END
WHERE import_id = :stage AND prior_paid_minor > 0 AND EXISTS (
    SELECT 1 FROM erp_item_payments l
    WHERE l.integration_id = :i AND l.external_ref = import_stage_obligations.external_ref)
"""
"""The ERP's paid-to-date less what Cartera knows as its own payments on the item."""

_EXPLICIT_ALLOCATION = """
INSERT INTO allocations (tenant_id, debtor_id, currency, obligation_id, payment_id,
                         amount_minor, explicit)
SELECT p.tenant_id, p.debtor_id, p.currency, o.id, p.id,
       CASE WHEN p.amount_minor < :amount THEN p.amount_minor ELSE :amount END, :true
FROM payments p JOIN obligations o
  ON o.tenant_id = p.tenant_id AND o.external_ref = :oref AND o.debtor_id = p.debtor_id
     AND o.currency = p.currency
WHERE p.tenant_id = :t AND p.external_ref = :pref AND :amount > 0
  AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.payment_id = p.id AND a.explicit)
"""
"""An ERP payment applied to the item the ERP cleared with it."""

_SEE = """
INSERT INTO erp_sync_seen (integration_id, external_ref, run_id)
SELECT :i, external_ref, :seen FROM import_stage_obligations WHERE import_id = :stage
ON CONFLICT (integration_id, external_ref) DO UPDATE SET run_id = excluded.run_id
"""



async def _see(conn: AsyncConnection, params: dict[str, Any], *, fresh: bool) -> None:
    """Record the staged items as seen by ``params["seen"]``; on a first load a plain
    insert (no conflict arbitration), unless an item was seen before after all."""
    if fresh:
        try:
            async with conn.begin_nested():
                await conn.execute(text(_SEE.split("ON CONFLICT")[0]), params)
            return
        except IntegrityError:
            pass
    await conn.execute(text(_SEE), params)


_GONE = """
SELECT s.external_ref FROM erp_sync_seen s WHERE s.integration_id = :i AND s.run_id <> :full
"""
_TOUCH_GONE = f"""
INSERT INTO import_touched_debtors (import_id, debtor_id)
SELECT DISTINCT :touch, o.debtor_id FROM obligations o
WHERE o.tenant_id = :t AND o.status IN ('open', 'disputed') AND o.external_ref IN ({_GONE})
ON CONFLICT DO NOTHING
"""
_CLOSE_GONE = f"""
UPDATE obligations SET status = 'cancelled', updated_at = :now
WHERE tenant_id = :t AND status IN ('open', 'disputed') AND external_ref IN ({_GONE})
"""


# --- one run -------------------------------------------------------------------------------

@dataclass
class _Run:
    run: ErpSyncRun
    integration: Integration
    connector: Any
    ctx: Any
    country: str
    page_size: int
    load: pipeline.ChunkLoad | None = None
    pages: int = 0
    last_signature: dict[str, tuple[Any, ...]] = field(default_factory=dict)


async def _session(sessionmaker: async_sessionmaker[AsyncSession], t: int) -> AsyncSession:
    session = sessionmaker()
    session.info["tenant_id"] = t
    return session


def _touch_key(run_id: int) -> int:
    return -run_id


def _stage_key(run_id: int, page: int) -> int:
    return -(run_id * 1024 + page % 1024)


async def _pull(r: _Run, stream: str, cursor: str | None) -> Page[Any]:
    """One page, outside any transaction, retried with backoff while the failure is
    transient; raises :class:`_PullError` when it still fails."""
    method = {"debtors": r.connector.pull_debtors, "open_items": r.connector.pull_open_items,
              "payments": getattr(r.connector, "pull_payments", None)}[stream]
    host = current_host()
    delay = PULL_BACKOFF_SECONDS
    for attempt in range(1, PULL_ATTEMPTS + 1):
        try:
            page: Page[Any] = await host.call(method(cursor, r.page_size, r.ctx),
                                              what=f"erp {stream} pull")
            if not isinstance(page, Page):
                raise _PullError(f"the connector's {stream} pull did not return a page",
                                 retry=True)
            signature = (page.next_cursor, len(page.items),
                         *(getattr(i, "external_id", None) for i in page.items[:1]),
                         *(getattr(i, "external_id", None) for i in page.items[-1:]))
            if page.items and (
                    (page.next_cursor is not None and page.next_cursor == cursor)
                    or r.last_signature.get(stream) == signature):
                raise _PullError(f"the ERP repeated a {stream} page (cursor kept at the last "
                                 "good page)", retry=True)
            r.last_signature[stream] = signature
            return page
        except _PullError as exc:
            failure: _PullError = exc
        except (PluginTimeout, EgressRefusedError, PluginCallError) as exc:
            cause = exc.__cause__
            if isinstance(exc, EgressRefusedError):
                failure = _PullError(str(exc), retry=False)
            elif isinstance(cause, ProviderError):
                failure = _PullError(f"{stream} pull failed: {cause}"[:900],
                                     retry=cause.kind != "permanent")
            else:
                failure = _PullError(str(exc)[:900], retry=True)
        if not failure.retry or attempt == PULL_ATTEMPTS:
            raise failure
        log.warning("erp pull failed; retrying", extra={"stream": stream,
                                                        "error": str(failure)})
        await asyncio.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def _chunk(r: _Run, stream: str, page: Page[Any]) -> tuple[rowmod.Chunk, list[str | None]]:
    """The page as a validated import chunk; ``keys[line - 1]`` is each line's ERP key."""
    chunk = rowmod.Chunk()
    keys: list[str | None] = []
    iid = r.integration.id
    for line, item in enumerate(page.items, start=1):
        keys.append(getattr(item, "external_id", None))
        try:
            if stream == "debtors":
                record = debtor_record(item, r.country)
            elif stream == "open_items":
                record = obligation_record(item)
            else:
                record = payment_record(iid, item)
        except (AttributeError, TypeError, ValueError) as exc:
            chunk.rows += 1
            chunk.errors.append(rowmod.RowError(line, None, "malformed_row", str(exc)[:500]))
            continue
        rowmod.add_record(chunk, line, record)
    return chunk, keys


async def _matched_payments(session: AsyncSession, iid: int,
                            items: list[ErpPayment]) -> set[str]:
    """ERP documents among ``items`` that are payments Cartera posted itself."""
    docs = {p.document_id for p in items}
    if not docs:
        return set()
    found = await session.scalars(select(ErpPosting.erp_document_id).where(
        ErpPosting.integration_id == iid, ErpPosting.status == "posted",
        ErpPosting.erp_document_id.in_(docs)))
    return {d for d in found if d is not None}


async def _link_pulled(session: AsyncSession, r: _Run, items: list[ErpPayment]) -> None:
    """Remember the ERP payments imported as Cartera payments per item, take them out of the
    paid-to-date already stored for those items, and keep each applied to the item the ERP
    cleared with it (an explicit allocation; see the module doc)."""
    iid, t = r.integration.id, r.integration.tenant_id
    keyed = {f"pulled:{p.external_id}"[:200]: p for p in items}
    known = set((await session.scalars(select(ErpItemPayment.source_key).where(
        ErpItemPayment.integration_id == iid,
        ErpItemPayment.source_key.in_(list(keyed))))).all())
    new: list[tuple[str, ErpPayment, int]] = []
    for key, p in keyed.items():
        if key in known:
            continue
        try:
            amount = rowmod.minor(_decimal(p.amount.amount), p.amount.currency, "amount")
        except Exception:  # reported as the payment row's error already
            continue
        new.append((key, p, amount))
    if not new:
        return
    await session.execute(insert(ErpItemPayment), [
        {"integration_id": iid, "source_key": key, "external_ref": p.open_item_external_id,
         "amount_minor": amount} for key, p, amount in new])
    await reduce_paid(session, t, _touch_key(r.run.id),
                      [(p.open_item_external_id, amount) for _, p, amount in new])
    conn = await session.connection()
    for _, p, amount in new:
        await conn.execute(text(_EXPLICIT_ALLOCATION), {
            "t": t, "pref": payment_ref(iid, p), "oref": p.open_item_external_id,
            "amount": amount, "true": True})


async def reduce_paid(session: AsyncSession, t: int, touch_key: int | None,
                      amounts: list[tuple[str, int]]) -> None:
    """Take ``amounts`` (obligation external ref, minor units) out of those obligations'
    stored paid-to-date (the ERP's), recording their debtors as touched."""
    conn = await session.connection()
    for ref, amount in amounts:
        params = {"t": t, "ref": ref, "amount": amount}
        if touch_key is not None:
            await conn.execute(text(
                "INSERT INTO import_touched_debtors (import_id, debtor_id) SELECT :touch, "
                "debtor_id FROM obligations WHERE tenant_id = :t AND external_ref = :ref "
                "ON CONFLICT DO NOTHING"), {**params, "touch": touch_key})
        await conn.execute(text(
            "UPDATE obligations SET prior_paid_minor = CASE WHEN prior_paid_minor > :amount "
            "THEN prior_paid_minor - :amount ELSE 0 END "
            "WHERE tenant_id = :t AND external_ref = :ref AND prior_paid_minor > 0"), params)


async def _apply_page(sessionmaker: async_sessionmaker[AsyncSession], r: _Run, stream: str,
                      cursor: str | None, resting: bool, full_run_id: int | None,
                      page: Page[Any],
                      mapped: tuple[rowmod.Chunk, list[str | None]] | None = None, *,
                      pages: int = 1) -> bool:
    """Apply one page (``pages`` ERP pages merged) and advance the stream's cursor in one
    transaction. Returns ``False``
    (applying nothing) when the stored cursor is not the one the page was pulled from: some
    other run moved it meanwhile."""
    t, iid, run_id = r.integration.tenant_id, r.integration.id, r.run.id
    last = page.next_cursor is None
    async with await _session(sessionmaker, t) as session, session.begin():
        async with pipeline.phase("erp_cursor_lock"):
            stored = await session.scalar(select(ErpSyncCursor).where(
                ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == stream)
                .with_for_update())
        assert stored is not None
        if stored.cursor != cursor or stored.resting != resting:
            return False
        conn = await session.connection()
        if r.load is None:
            r.load = await pipeline.new_chunk_load(conn, t)
            if not r.load.fresh_obligations:
                # A delta into a loaded portfolio: the targets' statistics hold; analysing
                # them (as a first load must) would cost more than the delta itself.
                r.load.chunks_staged = 2
        items = list(page.items)
        matched = 0
        if stream == "payments":
            own = await _matched_payments(session, iid, items)
            matched = sum(1 for p in items if p.document_id in own)
            items = [p for p in items if p.document_id not in own]
        chunk, keys = mapped if mapped is not None else _chunk(r, stream, Page(items=items))
        changed = 0
        seen = full_run_id if full_run_id is not None else run_id

        load = r.load

        async def adjust(c: AsyncConnection, stage: int) -> None:
            async with pipeline.phase("erp_adjust"):
                await _adjust(c, stage)

        async def _adjust(c: AsyncConnection, stage: int) -> None:
            nonlocal changed
            params = {"t": t, "i": iid, "stage": stage}
            if stream == "debtors":
                await c.execute(text(_KEEP_DEBTOR_FIELDS), params)
            elif stream == "open_items":
                # A first load (the tenant had no obligations when the run began) has no
                # collection state to keep and no Cartera payments to tell apart.
                if not load.fresh_obligations:
                    await c.execute(text(_KEEP_COLLECTION_STATE), params)
                    await c.execute(text(_NOT_DOUBLE_PAID), params)
                async with pipeline.phase("erp_seen"):
                    await _see(c, {**params, "seen": seen}, fresh=load.fresh_obligations)
            if stream == "open_items" and load.fresh_obligations:
                changed = int((await c.execute(text(
                    "SELECT count(*) FROM import_stage_obligations WHERE import_id = :stage"),
                    params)).scalar() or 0)
            else:
                changed = await pipeline.count_staged_changes(c, t, stage)

        async with pipeline.phase("erp_apply_chunk"):
            rejected = await pipeline.apply_chunk(
                conn, t, chunk, stage_key=_stage_key(run_id, r.pages),
                touched_key=_touch_key(run_id), load=r.load, adjust=adjust)
        if stream == "payments" and items:
            bad = {e.line for e in chunk.errors} | {e.line for e in rejected}
            await _link_pulled(session, r, [p for line, p in enumerate(items, start=1)
                                            if line not in bad])
        errors = _row_errors(r, stream, page.errors, [*chunk.errors, *chunk.warnings,
                                                      *rejected], keys)
        if errors:
            await session.execute(insert(ErpSyncRowError), errors)
        closed = 0
        if last and stream == "open_items" and full_run_id is not None:
            async with pipeline.phase("erp_close_gone"):
                closed = await _close_gone(conn, t, iid, run_id, full_run_id)
        next_cursor = page.delta_cursor if last else page.next_cursor
        await session.execute(update(ErpSyncCursor).where(
            ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == stream).values(
            cursor=next_cursor, resting=last, full_run_id=None if last else full_run_id,
            **({"last_run_id": run_id} if last else {}), updated_at=clock.now()))
        failed = len(page.errors) + len(chunk.errors) + len(rejected)
        r.run.rows_in += len(page.items) + len(page.errors)
        r.run.rows_changed += changed
        r.run.rows_failed += failed
        r.run.rows_closed += closed
        r.run.payments_matched += matched
        r.run.pages += pages
        r.run.cursors = {**r.run.cursors, stream: next_cursor}
        await session.execute(update(ErpSyncRun).where(ErpSyncRun.id == run_id).values(
            rows_in=r.run.rows_in, rows_changed=r.run.rows_changed,
            rows_failed=r.run.rows_failed, rows_closed=r.run.rows_closed,
            payments_matched=r.run.payments_matched, pages=r.run.pages,
            cursors=r.run.cursors))
    r.pages += 1
    return True


def _row_errors(r: _Run, stream: str, erp: list[ErpRowError], found: list[rowmod.RowError],
                keys: list[str | None]) -> list[dict[str, Any]]:
    t, run_id = r.integration.tenant_id, r.run.id
    out = [{"tenant_id": t, "run_id": run_id, "stream": stream,
            "row_key": (e.row_key or None) and e.row_key[:200], "field": None,
            "code": e.code[:64], "reason": e.message[:1000], "severity": "error"} for e in erp]
    out += [{"tenant_id": t, "run_id": run_id, "stream": stream,
             "row_key": (keys[e.line - 1] or None) and str(keys[e.line - 1])[:200],
             "field": e.field, "code": e.code[:64], "reason": e.reason[:1000],
             "severity": e.severity} for e in found]
    return out


async def _close_gone(conn: AsyncConnection, t: int, iid: int, run_id: int,
                      full_run_id: int) -> int:
    params = {"t": t, "i": iid, "full": full_run_id, "touch": _touch_key(run_id)}
    # Most full pulls (every first one) lose nothing: one look at the integration's seen
    # items, rather than statements over every open obligation of the tenant (whose plan,
    # right after a first load, rests on statistics from before it).
    if (await conn.execute(text(_GONE + " LIMIT 1"), params)).first() is None:
        return 0
    await conn.execute(text(_TOUCH_GONE), params)
    result = await conn.execute(
        text(_CLOSE_GONE).bindparams(bindparam("now", type_=UtcDateTime)),
        {**params, "now": clock.now()})
    await conn.execute(delete(ErpSyncSeen).where(ErpSyncSeen.integration_id == iid,
                                                 ErpSyncSeen.run_id != full_run_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def _stream_start(sessionmaker: async_sessionmaker[AsyncSession], r: _Run,
                        stream: str) -> tuple[str | None, bool, int | None, bool]:
    """Where this run pulls ``stream`` from: a pull under way resumes at its next page; at
    rest, the delta cursor (``None``, or a run asked to be ``full``: a full pull). The last
    value says the stream is done already: this run pulled it to the end (a retry)."""
    t, iid = r.integration.tenant_id, r.integration.id
    async with await _session(sessionmaker, t) as session, session.begin():
        stored = await session.scalar(select(ErpSyncCursor).where(
            ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == stream)
            .with_for_update())
        if stored is None:
            stored = ErpSyncCursor(tenant_id=t, integration_id=iid, stream=stream, cursor=None,
                                   resting=True, updated_at=clock.now())
            session.add(stored)
        if stored.resting and stored.last_run_id == r.run.id:
            return stored.cursor, True, None, True  # this run pulled it already (a retry)
        if stored.resting and (stored.cursor is None or r.run.full):
            # Begin a full pull; it counts as under way from its first page on.
            stored.cursor, stored.resting, stored.full_run_id = None, False, r.run.id
        await session.flush()
        return stored.cursor, stored.resting, stored.full_run_id, False


async def _pull_batch(r: _Run, stream: str, at: str | None, target: int
                      ) -> tuple[tuple[Page[Any], Any, int] | None, Exception | None]:
    """Pull pages from ``at`` until ``target`` rows or the stream's end, merged into one
    page to apply (``(page, mapped chunk, ERP pages in it)``). A failed pull ends the batch
    early: the pages before it (or ``None``) and the failure, to raise once they are
    applied."""
    pages: list[Page[Any]] = []
    rows = 0
    failure: Exception | None = None
    while True:
        try:
            page = await _pull(r, stream, at)
        except Exception as exc:
            failure = exc
            break
        pages.append(page)
        rows += len(page.items) + len(page.errors)
        if page.next_cursor is None or rows >= target:
            break
        at = page.next_cursor
    if not pages:
        return None, failure
    merged: Page[Any] = pages[0] if len(pages) == 1 else Page(
        items=[i for p in pages for i in p.items], errors=[e for p in pages for e in p.errors],
        next_cursor=pages[-1].next_cursor, delta_cursor=pages[-1].delta_cursor)
    # The payments stream is matched against postings in the transaction that applies it.
    mapped = None if stream == "payments" else await asyncio.to_thread(_chunk, r, stream,
                                                                       merged)
    return (merged, mapped, len(pages)), failure


async def _pull_stream(sessionmaker: async_sessionmaker[AsyncSession], r: _Run, stream: str,
                       progress: pipeline.Progress) -> None:
    cursor, resting, full_run_id, done = await _stream_start(sessionmaker, r, stream)
    if done:
        return
    # Consecutive ERP pages are applied together, APPLY_ROWS rows or more a transaction (a
    # transaction's fixed cost is paid per batch, not per ERP page); the cursor stored is
    # the one after the batch's last page. The next batch is pulled and mapped (in a
    # thread) while this one is applied: the ERP, the mapping and the database work at
    # once. A failed pull ends its batch early: the pages before it are applied, then the
    # failure is raised (the cursor stays at the last good page).
    target = max(r.page_size, APPLY_ROWS)
    pending: asyncio.Future[Any] = asyncio.ensure_future(_pull_batch(r, stream, cursor, target))
    following: asyncio.Future[Any] | None = None
    try:
        while True:
            async with pipeline.phase("erp_fetch_wait"):
                batch, failure = await pending
            if batch is None:
                assert failure is not None
                raise failure
            page, mapped, count = batch
            following = (asyncio.ensure_future(_pull_batch(r, stream, page.next_cursor, target))
                         if page.next_cursor is not None and failure is None else None)
            async with pipeline.phase("erp_page_tx"):
                applied = await _apply_page(sessionmaker, r, stream, cursor, resting,
                                            full_run_id, page, mapped, pages=count)
            if not applied:
                raise _PullError(f"another run moved the {stream} cursor; this run stops",
                                 retry=False)
            await progress(r.run.rows_in, 0)
            if failure is not None:
                raise failure
            if following is None:
                return
            cursor, resting, pending, following = page.next_cursor, False, following, None
    finally:
        for task in (pending, following):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _prepare(sessionmaker: async_sessionmaker[AsyncSession], run_id: int,
                   tenant_id: int) -> _Run | None:
    async with await _session(sessionmaker, tenant_id) as session, session.begin():
        run = await session.scalar(select(ErpSyncRun).where(ErpSyncRun.id == run_id)
                                   .with_for_update())
        if run is None or run.status in ("succeeded", "failed"):
            return None
        integration = await session.get(Integration, run.integration_id)
        assert integration is not None
        country = await session.scalar(select(Tenant.country).where(Tenant.id == tenant_id))
        page_size = await session.scalar(select(ErpSyncSettings.page_size).where(
            ErpSyncSettings.integration_id == integration.id))
        run.status = "running"
        run.started_at = run.started_at or clock.now()
        run.error = None
        await session.flush()
        session.expunge_all()
    registered = current_host().provider("erp", integration.provider_name)
    if registered is None or not integration.enabled:
        raise SyncFailed("the integration is disabled or its ERP connector is not installed",
                         retry=False)
    settings = get_settings()
    ctx = integrations.context_for(integration, registered.provider, settings.public_base,
                                   settings.plugin_timeout_seconds)
    return _Run(run, integration, registered.provider, ctx, country or "PE",
                page_size or DEFAULT_PAGE_SIZE)


async def _end(sessionmaker: async_sessionmaker[AsyncSession], r: _Run, actor: Actor,
               failure: SyncFailed | None) -> None:
    """Rebalance what the run touched and close it (also after a failure: what was applied
    stays applied and consistent)."""
    t = r.integration.tenant_id
    async with await _session(sessionmaker, t) as session, session.begin():
        await pipeline.rebalance_touched(session, t, _touch_key(r.run.id))
        values: dict[str, Any] = {
            "status": "succeeded" if failure is None else
            ("retrying" if failure.retry else "failed"),
            "error": None if failure is None else str(failure)[:1000]}
        if failure is None or not failure.retry:
            values["finished_at"] = clock.now()
        await session.execute(update(ErpSyncRun).where(ErpSyncRun.id == r.run.id)
                              .values(**values))
        audit.record(session, actor, "erp_sync.completed" if failure is None else
                     "erp_sync.failed", "erp_sync_run", r.run.id,
                     {"integration_id": r.integration.id, "rows_in": r.run.rows_in,
                      "rows_changed": r.run.rows_changed, "rows_failed": r.run.rows_failed,
                      "rows_closed": r.run.rows_closed,
                      **({} if failure is None else {"error": str(failure)[:300],
                                                     "retry": failure.retry})})


async def run_sync(sessionmaker: async_sessionmaker[AsyncSession], run_id: int, actor: Actor,
                   progress: pipeline.Progress, *, may_retry: bool = True) -> ErpSyncRun:
    """Run sync run ``run_id`` (see the module doc). Idempotent: a retry or a redelivery
    after a crash resumes every stream at its stored cursor. Raises :class:`SyncFailed`."""
    try:
        r = await _prepare(sessionmaker, run_id, actor.tenant_id)
    except SyncFailed as exc:
        await _mark(sessionmaker, actor.tenant_id, run_id, "failed", str(exc))
        raise
    if r is None:
        async with await _session(sessionmaker, actor.tenant_id) as session:
            done = await session.get(ErpSyncRun, run_id)
        if done is None:
            raise LookupError(f"sync run {run_id} not found")
        return done
    failure: SyncFailed | None = None
    try:
        streams = getattr(r.connector, "streams", frozenset({"debtors", "open_items"}))
        for stream in STREAMS:
            if stream in streams:
                await _pull_stream(sessionmaker, r, stream, progress)
    except _PullError as exc:
        failure = SyncFailed(str(exc), retry=exc.retry and may_retry)
    except Exception as exc:
        failure = SyncFailed(tenant_facing(exc, log, "erp sync", run_id=run_id),
                             retry=may_retry)
    finally:
        close = getattr(r.connector, "close", None)
        if close is not None:
            try:
                await current_host().call(close(r.ctx), what="erp close")
            except Exception:
                log.warning("erp connector close failed", extra={"run_id": run_id})
    async with pipeline.phase("erp_end"):
        await _end(sessionmaker, r, actor, failure)
    if failure is not None:
        raise failure
    from cartera.erpsync import postings

    await postings.sweep(sessionmaker, integration_id=r.integration.id)
    return r.run


async def _mark(sessionmaker: async_sessionmaker[AsyncSession], t: int, run_id: int,
                status: str, error: str) -> None:
    async with await _session(sessionmaker, t) as session, session.begin():
        await session.execute(update(ErpSyncRun).where(ErpSyncRun.id == run_id).values(
            status=status, error=error[:1000], finished_at=clock.now()))


# --- queueing ------------------------------------------------------------------------------

ACTIVE = ("queued", "running", "retrying")


async def queue_run(session: AsyncSession, runner: Any, integration: Integration, *,
                    trigger: str, full: bool = False, actor: Actor | None = None
                    ) -> ErpSyncRun:
    """Record a queued run and its job in the caller's transaction."""
    run = ErpSyncRun(tenant_id=integration.tenant_id, integration_id=integration.id,
                     trigger=trigger, full=full, status="queued", rows_in=0, rows_changed=0,
                     rows_failed=0, rows_closed=0, payments_matched=0, pages=0, cursors={},
                     created_at=clock.now())
    session.add(run)
    await session.flush()
    job = await runner.enqueue(session, integration.tenant_id, KIND, {
        "run_id": run.id, "client_id": actor.client_id if actor else None,
        "request_id": actor.request_id if actor else None,
        "lock": f"erpsync:{integration.id}"})
    run.job_id = job.id
    await session.flush()
    return run


async def active_run(session: AsyncSession, integration_id: int) -> ErpSyncRun | None:
    found: ErpSyncRun | None = await session.scalar(select(ErpSyncRun).where(
        ErpSyncRun.integration_id == integration_id, ErpSyncRun.status.in_(ACTIVE))
        .order_by(ErpSyncRun.id).limit(1))
    return found


def next_run_after(now: datetime, every_minutes: int | None, at_times: list[str],
                   tz: str) -> datetime | None:
    """The next scheduled instant after ``now``: ``every_minutes`` from now, or the next of
    the local ``at_times`` (``HH:MM`` in zone ``tz``), whichever is sooner."""
    from zoneinfo import ZoneInfo

    candidates: list[datetime] = []
    if every_minutes:
        candidates.append(now + timedelta(minutes=every_minutes))
    if at_times:
        zone = ZoneInfo(tz)
        local = now.astimezone(zone)
        for day in (0, 1):
            for hhmm in at_times:
                hour, minute = (int(x) for x in hhmm.split(":"))
                at = datetime.combine(local.date() + timedelta(days=day),
                                      datetime.min.time(), zone).replace(hour=hour,
                                                                         minute=minute)
                if at > now:
                    candidates.append(at.astimezone(UTC))
    return min(candidates) if candidates else None


async def queue_scheduled(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> int:
    """Queue a run for every enabled ERP integration whose next scheduled instant has come
    and that has no run under way; move its next instant on. Idempotent per minute."""
    now = clock.now()
    queued = 0
    async with sessionmaker() as session:
        due = (await session.execute(
            select(ErpSyncSettings, Integration, Tenant.timezone)
            .join(Integration, Integration.id == ErpSyncSettings.integration_id)
            .join(Tenant, Tenant.id == Integration.tenant_id)
            .where(ErpSyncSettings.next_run_at <= now, Integration.enabled)
            .with_for_update(of=ErpSyncSettings, skip_locked=True))).all()
        for settings, integration, tz in due:
            settings.next_run_at = next_run_after(now, settings.every_minutes,
                                                  list(settings.at_times), tz)
            if await active_run(session, integration.id) is None:
                await queue_run(session, runner, integration, trigger="schedule")
                queued += 1
        await session.commit()
    return queued


async def count_runs(session: AsyncSession, integration_id: int) -> int:
    return int(await session.scalar(select(func.count()).select_from(ErpSyncRun).where(
        ErpSyncRun.integration_id == integration_id)) or 0)
