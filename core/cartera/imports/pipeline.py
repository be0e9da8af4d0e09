"""The import pipeline: stage each validated chunk, then upsert it set-based.

Contract (:func:`run_import`):

* Rows are upserted by ``(tenant_id, external_ref)``: each row states the full record, like
  a PUT. An existing row is written only when a value differs, so importing the same file
  twice changes nothing (no ``updated_at`` bump, no allocation or balance rewrite).
* Inside a chunk debtors go first, then obligations, then payments. An obligation or
  payment whose ``debtor_external_ref`` is neither in the database nor on an earlier line
  of the file is rejected (``unknown_debtor``); likewise an unknown ``portfolio_code``.
* Debtor tags in a row replace the debtor's tags. Contact points are added; an existing
  contact point (same kind and value) is left as it is, so an import never overwrites a
  consent or opt-out recorded since.
* A bad row is reported (line, field, code, reason) and contributes nothing.
* Each chunk commits in two transactions, debtors (with tags, contacts and the chunk's row
  errors) then obligations and payments; on PostgreSQL the next chunk's debtors load on a
  second connection while this chunk's money loads (see :func:`_load_all`). After the last
  chunk, the offers their payments now pay in full are applied (their discount a credit
  note, as for a single payment), then one :func:`rebalance` over the debtors whose
  obligations or payments changed recomputes allocations (oldest due first), outstanding
  amounts, statuses and balance summaries; in the same transaction those debtors are
  settled (promises and plans), re-segmented and replanned
  (:func:`cartera.changes.debtors_changed`: one segmentation pass and one planner pass
  restricted to them). Until then a running import's debtors may show stale balances,
  segments and plans (a chunk does not replan: its debtors' balances are only recomputed
  at the end).
* A run that fails after some chunks committed ends with the same final step: the debtors
  those chunks touched are rebalanced, their summaries refreshed and their promises and
  plans settled, so the portfolio is consistent even though the import is not complete.
  A transient database error (serialization failure, deadlock, lost connection) leaves the
  import ``queued`` for another attempt (:class:`ImportFailed` with ``retry``); any other
  failure (an unreadable file, a bug) is final: ``failed``, with its reason as ``error``.
* Retrying (at-least-once jobs) is safe: a retry replays the file, finds the committed
  chunks unchanged, and rebalances every debtor recorded as touched by any attempt.
* When the import ends for good (succeeded or failed) its upload is deleted, or kept for
  the retention period (:mod:`cartera.imports.retention`).

Staging is ``COPY`` on PostgreSQL and ``executemany`` on SQLite, each chunk under a key of
its own; everything after it is set-based SQL, the same on both but for a few PostgreSQL
shortcuts (``RETURNING`` in a CTE): ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE
changed``, with the chunk's debtor references resolved to ids once (``import_stage_refs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from cartera import changes, clock
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db.base import UtcDateTime
from cartera.errors import tenant_facing
from cartera.imports import rows as rowmod
from cartera.imports.models import (
    STAGING_TABLES,
    ImportRowError,
    ImportRun,
    stage_contacts,
    stage_debtors,
    stage_obligations,
    stage_payments,
    stage_refs,
    stage_tags,
    touched_debtors,
)
from cartera.imports.retention import delete_upload
from cartera.jobs.runner import is_transient_db_error
from cartera.negotiation.status import settle_debtors
from cartera.offers.service import apply_paid_offers_many
from cartera.payments.allocation import DebtorScope, lock_scope, rebalance
from cartera.portfolio.service import tenant_today
from cartera.settings import get_settings

log = logging.getLogger("cartera.imports")

Progress = Callable[[int, int], Awaitable[None]]

PHASES: dict[str, float] = {}
"""Seconds spent per phase, summed over every import in this process (for profiling)."""


@asynccontextmanager
async def _phase(name: str) -> Any:
    started = time.perf_counter()
    try:
        yield
    finally:
        PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - started


phase = _phase
"""Time a block under ``name`` in :data:`PHASES` (for profiling)."""


class ImportFailed(Exception):
    """The import did not succeed; ``str(exc)`` is the error recorded on it. ``retry``: the
    failure was transient and the import is ``queued`` for another attempt; otherwise it is
    ``failed`` for good."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def failure_reason(exc: BaseException, import_id: int) -> str:
    """What an import's ``error`` says about ``exc``: the message of a file problem (the
    tenant's own file); the driver's first line (no SQL, no parameters) of a transient
    database error, which will be retried; else a code and an error id, the full error
    logged for the operator (see :func:`cartera.errors.tenant_facing`)."""
    if isinstance(exc, rowmod.FileError | OSError | UnicodeDecodeError):
        return str(exc)
    if isinstance(exc, DBAPIError) and is_transient_db_error(exc):
        orig = exc.orig
        return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"
    return tenant_facing(exc, log, "import", import_id=import_id)


@dataclass
class ImportResult:
    rows_total: int = 0
    rows_applied: int = 0
    rows_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"rows_total": self.rows_total, "rows_applied": self.rows_applied,
                "rows_failed": self.rows_failed}


# --- staging -----------------------------------------------------------------------------

def _columns(table: Any) -> list[str]:
    return [c.name for c in table.columns]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(values: list[tuple[Any, ...]], key: int) -> bytes:
    """Rows in PostgreSQL's ``COPY ... FROM STDIN`` text format, as one block, each row
    preceded by the staging ``key``.

    Staged values are ``None``, ``str``, ``bool`` or numbers. Formatting is inlined (no call
    per value): at a million rows it is a good part of the parser thread's time.
    """
    prefix, esc = f"{key}\t", _COPY_ESCAPES
    return "".join([
        prefix + "\t".join([
            "\\N" if v is None else v.translate(esc) if v.__class__ is str
            else ("t" if v else "f") if v.__class__ is bool else str(v)
            for v in row]) + "\n"
        for row in values]).encode()


def _tag_rows(chunk: rowmod.Chunk) -> list[tuple[Any, ...]]:
    return [(ref, tag) for ref, tags in chunk.tags.items() for tag in tags]


def _contact_rows(chunk: rowmod.Chunk) -> list[tuple[Any, ...]]:
    return [c for contacts in chunk.contacts.values() for c in contacts]


def _ref_rows(chunk: rowmod.Chunk) -> list[tuple[Any, ...]]:
    """Every debtor the chunk names, once: (reference, id unknown yet, existed unknown yet,
    the chunk's line defining that debtor or None)."""
    first_line = {ref: row[0] for ref, row in chunk.debtors.items()}
    refs = dict.fromkeys(first_line)
    for row in (*chunk.obligations.values(), *chunk.payments.values()):
        refs[row[2]] = None  # (line, external_ref, debtor_external_ref, ...)
    return [(ref, None, False, first_line.get(ref)) for ref in refs]


def _staged_rows(chunk: rowmod.Chunk) -> list[tuple[Any, list[tuple[Any, ...]]]]:
    """(staging table, rows without their key) in staging order."""
    return [(stage_debtors, list(chunk.debtors.values())), (stage_tags, _tag_rows(chunk)),
            (stage_contacts, _contact_rows(chunk)),
            (stage_obligations, list(chunk.obligations.values())),
            (stage_payments, list(chunk.payments.values())), (stage_refs, _ref_rows(chunk))]


_KEYS_PER_IMPORT = 1024


def _stage_key(import_id: int, chunk_no: int) -> int:
    """The staging tables' ``import_id`` value for one chunk of one import.

    On PostgreSQL a chunk is staged while the one before it is still being applied, so each
    chunk has a key of its own; an import's keys all lie in :func:`_stage_keys`.
    """
    return import_id * _KEYS_PER_IMPORT + chunk_no % _KEYS_PER_IMPORT


def _stage_keys(import_id: int) -> tuple[int, int]:
    """The first and last staging key an import can use."""
    return import_id * _KEYS_PER_IMPORT, import_id * _KEYS_PER_IMPORT + _KEYS_PER_IMPORT - 1


@dataclass
class _Parsed:
    """A validated chunk, its staging key and, for PostgreSQL, its staging rows already as
    COPY text."""

    chunk: rowmod.Chunk
    key: int
    copy_blocks: list[tuple[Any, bytes]] | None = None


def _copy_blocks(chunk: rowmod.Chunk, key: int) -> list[tuple[Any, bytes]]:
    return [(table, copy_text(rows, key)) for table, rows in _staged_rows(chunk) if rows]


async def _analyze(conn: AsyncConnection, parsed: _Parsed, state: _LoadState) -> None:
    """Statistics for the staged chunk, or the planner takes it for empty (nested loops).

    After the first chunk, everything staged; after the second, the targets too (on a
    first load they were empty when last analysed, and the planner would then scan them
    whole, per chunk, rather than probe them). For every other chunk only the staging key:
    the other columns' figures hold from chunk to chunk, but each chunk has its own key
    (sampled cheaply: migration 0008 lowers that column's statistics target).
    """
    if state.chunks_staged == 0:
        tables = [t.name for t in STAGING_TABLES]
    else:
        tables = [f"{t.name} (import_id)" for t, _ in parsed.copy_blocks or ()]
        if state.chunks_staged == 1:
            tables += ["debtors", "debtor_tags", "obligations", "payments"]
    for table in tables:
        await conn.exec_driver_sql(f"ANALYZE {table}")


async def _stage_chunk(conn: AsyncConnection, parsed: _Parsed, state: _LoadState) -> None:
    if parsed.copy_blocks is not None:
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        # One text block per table, built in the parser thread while the previous chunk
        # loaded, rather than one write_row call per row: several times faster.
        async with _phase("stage"), pg.cursor() as cur:
            for table, data in parsed.copy_blocks:
                async with cur.copy(
                        f"COPY {table.name} ({', '.join(_columns(table))}) FROM STDIN") as copy:
                    await copy.write(data)
        async with _phase("analyze"):
            await _analyze(conn, parsed, state)
        return
    async with _phase("stage"):
        for table, rows in _staged_rows(parsed.chunk):
            if rows:
                cols = _columns(table)
                marks = ", ".join("?" for _ in cols)
                await conn.exec_driver_sql(
                    f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})",
                    [(parsed.key, *row) for row in rows])


# --- set-based SQL -----------------------------------------------------------------------

def _differs(pairs: list[tuple[str, str]], dialect: str) -> str:
    op = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"{a} {op} {b}" for a, b in pairs)


_REF_DEBTOR = ("SELECT d.id FROM debtors d "
               "WHERE d.tenant_id = :t AND d.external_ref = import_stage_refs.external_ref")
"""The debtor a staged reference names (one index probe)."""

_RESOLVE_REFS = f"""
UPDATE import_stage_refs SET existed = :true, debtor_id = ({_REF_DEBTOR})
WHERE import_id = :stage AND EXISTS ({_REF_DEBTOR})
"""
"""Give the chunk's staged debtor references (:func:`_ref_rows`) the ids of the debtors that
already exist. Correlated probes per reference: a join would let the planner hash the
tenant's whole debtor table for every chunk, which grows with the portfolio rather than the
chunk."""

_FILL_NEW_REFS = f"""
UPDATE import_stage_refs SET debtor_id = ({_REF_DEBTOR})
WHERE import_id = :stage AND debtor_id IS NULL
"""
"""After the debtor upsert: the ids of the debtors this chunk created."""

_UPSERT_FILLING_REFS = """
WITH up AS ({upsert} RETURNING id, external_ref)
UPDATE import_stage_refs SET debtor_id = up.id FROM up
WHERE import_stage_refs.import_id = :stage AND import_stage_refs.external_ref = up.external_ref
  AND import_stage_refs.debtor_id IS NULL
"""
"""PostgreSQL: the debtor upsert and :data:`_FILL_NEW_REFS` in one statement (every debtor
the chunk created is among the rows the upsert returns), without probing for them again."""

_UNKNOWN_DEBTOR = """
SELECT s.line, s.debtor_external_ref FROM {stage} s
JOIN import_stage_refs r ON r.import_id = :stage AND r.external_ref = s.debtor_external_ref
WHERE s.import_id = :stage AND r.debtor_id IS NULL
  AND (r.first_line IS NULL OR r.first_line > s.line)
"""
_UNKNOWN_PORTFOLIO = """
SELECT s.line, s.portfolio_code FROM import_stage_obligations s
WHERE s.import_id = :stage AND s.portfolio_code IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM portfolios p WHERE p.tenant_id = :t AND p.code = s.portfolio_code)
"""

# (stage, query, reference column, what, key, code)
_REFERENCES = (
    ("import_stage_obligations", _UNKNOWN_DEBTOR, "debtor_external_ref", "debtor",
     "external_ref", "unknown_debtor"),
    ("import_stage_payments", _UNKNOWN_DEBTOR, "debtor_external_ref", "debtor", "external_ref",
     "unknown_debtor"),
    ("import_stage_obligations", _UNKNOWN_PORTFOLIO, "portfolio_code", "portfolio", "code",
     "unknown_portfolio"),
)


async def _reject_unknown_refs(conn: AsyncConnection, t: int,
                               stage: int) -> list[rowmod.RowError]:
    """Report and unstage rows that reference a debtor or portfolio that does not exist.

    Needs ``import_stage_refs`` resolved for the chunk, before its debtors are upserted.
    """
    errors: list[rowmod.RowError] = []
    for table, query, ref, what, key, code in _REFERENCES:
        bad = (await conn.execute(text(query.format(stage=table)), {"t": t, "stage": stage})).all()
        if not bad:
            continue
        errors += [rowmod.RowError(line, ref, code, f"no {what} with {key} {value!r} in the "
                                   "tenant or on an earlier line") for line, value in bad]
        await conn.execute(text(f"DELETE FROM {table} WHERE import_id = :stage AND line IN "
                                f"({', '.join(str(int(line)) for line, _ in bad)})"),
                           {"stage": stage})
    return errors


_DEBTOR_COLS = ["kind", "name", "national_id", "country", "subdivision", "timezone", "zone",
                "risk_score", "attributes"]


def _upsert_debtors(dialect: str) -> str:
    cols = ", ".join(_DEBTOR_COLS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in [*_DEBTOR_COLS, "updated_at"])
    changed = _differs([(f"debtors.{c}", f"excluded.{c}") for c in _DEBTOR_COLS], dialect)
    return f"""
INSERT INTO debtors (tenant_id, external_ref, {cols}, created_at, updated_at)
SELECT :t, external_ref, {cols}, :now, :now FROM import_stage_debtors WHERE import_id = :stage
ON CONFLICT (tenant_id, external_ref) DO UPDATE SET {sets} WHERE {changed}
"""


# Only debtors that existed before the chunk can have tags the row no longer lists.
_DELETE_TAGS = """
DELETE FROM debtor_tags WHERE tenant_id = :t AND (debtor_id, tag) IN (
    SELECT dt.debtor_id, dt.tag FROM import_stage_debtors sd
    JOIN import_stage_refs r
      ON r.import_id = :stage AND r.external_ref = sd.external_ref AND r.existed
    JOIN debtor_tags dt ON dt.debtor_id = r.debtor_id
    LEFT JOIN import_stage_tags st
      ON st.import_id = :stage AND st.external_ref = sd.external_ref AND st.tag = dt.tag
    WHERE sd.import_id = :stage AND st.tag IS NULL)
"""

_INSERT_TAGS = """
INSERT INTO debtor_tags (tenant_id, debtor_id, tag)
SELECT :t, r.debtor_id, st.tag FROM import_stage_tags st
JOIN import_stage_refs r ON r.import_id = :stage AND r.external_ref = st.external_ref
WHERE st.import_id = :stage
ON CONFLICT (debtor_id, tag) DO NOTHING
"""

_INSERT_CONTACTS = """
INSERT INTO contact_points (tenant_id, debtor_id, kind, value, label, consent,
    opted_out_channels, origin, preferred, created_at, updated_at)
SELECT :t, r.debtor_id, sc.kind, sc.value, sc.label, sc.consent, sc.opted_out_channels,
       sc.origin, sc.preferred, :now, :now
FROM import_stage_contacts sc
JOIN import_stage_refs r ON r.import_id = :stage AND r.external_ref = sc.external_ref
WHERE sc.import_id = :stage
ON CONFLICT (debtor_id, kind, value) DO NOTHING
"""

# Obligations: (column, staged value). 'paid' is derived, so a row saying 'open' does not
# differ from a stored 'paid'.
_OBLIGATION_VALUES = [
    ("debtor_id", "r.debtor_id"), ("portfolio_id", "p.id"), ("kind", "s.kind"),
    ("product", "s.product"), ("currency", "s.currency"),
    ("original_minor", "s.original_minor"), ("prior_paid_minor", "s.prior_paid_minor"),
    ("issue_date", "s.issue_date"), ("due_date", "s.due_date"),
]
_OBLIGATION_FROM = """
FROM import_stage_obligations s
JOIN import_stage_refs r ON r.import_id = :stage AND r.external_ref = s.debtor_external_ref
LEFT JOIN portfolios p ON p.tenant_id = :t AND p.code = s.portfolio_code
"""
_STATUS_DIFFERS = ("(CASE WHEN {o}.status = 'paid' THEN 'open' ELSE {o}.status END) "
                   "<> {s}.status")


def _obligation_changed(dialect: str, o: str, src: dict[str, str], s: str) -> str:
    pairs = [(f"{o}.{c}", src[c]) for c, _ in _OBLIGATION_VALUES]
    return f"({_differs(pairs, dialect)} OR {_STATUS_DIFFERS.format(o=o, s=s)})"


def _touch_obligations(dialect: str) -> str:
    changed = _obligation_changed(dialect, "o", dict(_OBLIGATION_VALUES), "s")
    return f"""
WITH changed AS (
    SELECT r.debtor_id AS new_id, o.debtor_id AS old_id {_OBLIGATION_FROM}
    LEFT JOIN obligations o ON o.tenant_id = :t AND o.external_ref = s.external_ref
    WHERE s.import_id = :stage AND (o.id IS NULL OR {changed})
)
INSERT INTO import_touched_debtors (import_id, debtor_id)
SELECT DISTINCT :imp, id FROM (SELECT new_id AS id FROM changed
                               UNION SELECT old_id FROM changed WHERE old_id IS NOT NULL) u
WHERE true ON CONFLICT DO NOTHING
"""


def _insert_obligations() -> str:
    cols = [c for c, _ in _OBLIGATION_VALUES]
    sources = ", ".join(v for _, v in _OBLIGATION_VALUES)
    return f"""
INSERT INTO obligations (tenant_id, external_ref, {", ".join(cols)}, outstanding_minor, status,
                         created_at, updated_at)
SELECT :t, s.external_ref, {sources}, s.original_minor - s.prior_paid_minor, s.status, :now, :now
{_OBLIGATION_FROM} WHERE s.import_id = :stage
"""


def _upsert_obligations(dialect: str) -> str:
    cols = [c for c, _ in _OBLIGATION_VALUES]
    changed = _obligation_changed(dialect, "obligations", {c: f"excluded.{c}" for c in cols},
                                  "excluded")
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols)
    return f"""{_insert_obligations()}ON CONFLICT (tenant_id, external_ref) DO UPDATE SET {sets},
    status = CASE WHEN excluded.status = 'open' AND obligations.status = 'paid'
                  THEN 'paid' ELSE excluded.status END,
    updated_at = excluded.updated_at
WHERE {changed}
"""


_PAYMENT_VALUES = [("debtor_id", "r.debtor_id"), ("currency", "s.currency"),
                   ("amount_minor", "s.amount_minor"), ("paid_on", "s.paid_on"),
                   ("method", "s.method"), ("reference", "s.reference")]
_PAYMENT_FROM = """
FROM import_stage_payments s
JOIN import_stage_refs r ON r.import_id = :stage AND r.external_ref = s.debtor_external_ref
"""


def _touch_payments(dialect: str) -> str:
    changed = _differs([(f"p.{c}", v) for c, v in _PAYMENT_VALUES], dialect)
    return f"""
WITH changed AS (
    SELECT r.debtor_id AS new_id, p.debtor_id AS old_id {_PAYMENT_FROM}
    LEFT JOIN payments p ON p.tenant_id = :t AND p.external_ref = s.external_ref
    WHERE s.import_id = :stage AND (p.id IS NULL OR {changed})
)
INSERT INTO import_touched_debtors (import_id, debtor_id)
SELECT DISTINCT :imp, id FROM (SELECT new_id AS id FROM changed
                               UNION SELECT old_id FROM changed WHERE old_id IS NOT NULL) u
WHERE true ON CONFLICT DO NOTHING
"""


def _upsert_payments(dialect: str) -> str:
    cols = [c for c, _ in _PAYMENT_VALUES]
    changed = _differs([(f"payments.{c}", f"excluded.{c}") for c in cols], dialect)
    return f"""
INSERT INTO payments (tenant_id, external_ref, {", ".join(cols)}, unapplied_minor, status,
                      created_at)
SELECT :t, s.external_ref, {", ".join(v for _, v in _PAYMENT_VALUES)}, s.amount_minor,
       'applied', :now
{_PAYMENT_FROM} WHERE s.import_id = :stage
ON CONFLICT (tenant_id, external_ref) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in cols)}
WHERE {changed}
"""


async def _sql(conn: AsyncConnection, sql: str, **params: Any) -> None:
    stmt = text(sql)
    if "now" in params:
        stmt = stmt.bindparams(bindparam("now", type_=UtcDateTime))
    await conn.execute(stmt, params)


def _upsert_touching(upsert: str) -> str:
    """``upsert``, recording the debtor of every row it inserts or changes (PostgreSQL)."""
    return f"""
WITH up AS ({upsert} RETURNING debtor_id)
INSERT INTO import_touched_debtors (import_id, debtor_id)
SELECT DISTINCT :imp, debtor_id FROM up ON CONFLICT DO NOTHING
"""


@dataclass
class _LoadState:
    """What one run's chunks share.

    ``fresh_*``: the tenant had no obligations (payments) when the run started, so every
    existing one was written by this import and its earlier debtor is already recorded as
    touched; the upsert then records the debtors it writes (``RETURNING``) instead of first
    joining the whole chunk against the table to find changed rows and their old debtor.
    """

    chunks_staged: int = 0
    fresh_obligations: bool = False
    fresh_payments: bool = False


async def _fresh(conn: AsyncConnection, table: str, t: int) -> bool:
    found = await conn.execute(text(f"SELECT 1 FROM {table} WHERE tenant_id = :t LIMIT 1"),
                               {"t": t})
    return found.first() is None


async def _tune(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        # Safe to lose on a crash: the job is idempotent and replays the file.
        await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        # Compiling these statements costs more than running them on a chunk.
        await conn.exec_driver_sql("SET LOCAL jit = off")
        await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")


async def _apply_debtors(conn: AsyncConnection, t: int, stage: int) -> None:
    """Upsert the staged debtors, their tags and contacts; resolve the new debtors' ids."""
    now, dialect = clock.now(), conn.dialect.name
    async with _phase("upsert_debtors"):
        if dialect == "postgresql":
            await _sql(conn, _UPSERT_FILLING_REFS.format(upsert=_upsert_debtors(dialect)), t=t,
                       stage=stage, now=now)
        else:
            await _sql(conn, _upsert_debtors(dialect), t=t, stage=stage, now=now)
            await _sql(conn, _FILL_NEW_REFS, t=t, stage=stage)
    async with _phase("tags"):
        await _sql(conn, _DELETE_TAGS, t=t, stage=stage)
        await _sql(conn, _INSERT_TAGS, t=t, stage=stage)
    async with _phase("contacts"):
        await _sql(conn, _INSERT_CONTACTS, t=t, stage=stage, now=now)


async def _apply_money(conn: AsyncConnection, t: int, imp: int, stage: int,
                       state: _LoadState) -> None:
    """Upsert the staged obligations and payments, recording the debtors they touch."""
    dialect, now = conn.dialect.name, clock.now()
    async with _phase("upsert_obligations"):
        if state.fresh_obligations:
            try:
                # A first load: a plain insert (no conflict arbitration) is cheaper...
                async with conn.begin_nested():
                    await _sql(conn, _upsert_touching(_insert_obligations()), t=t, imp=imp,
                               stage=stage, now=now)
            except IntegrityError:
                # ...unless the file names an obligation again in a later chunk.
                await _sql(conn, _upsert_touching(_upsert_obligations(dialect)), t=t, imp=imp,
                           stage=stage, now=now)
        else:
            await _sql(conn, _touch_obligations(dialect), t=t, imp=imp, stage=stage)
            await _sql(conn, _upsert_obligations(dialect), t=t, stage=stage, now=now)
    async with _phase("payments"):
        if state.fresh_payments:
            await _sql(conn, _upsert_touching(_upsert_payments(dialect)), t=t, imp=imp,
                       stage=stage, now=now)
        else:
            await _sql(conn, _touch_payments(dialect), t=t, imp=imp, stage=stage)
            await _sql(conn, _upsert_payments(dialect), t=t, stage=stage, now=now)


async def _clear_staging(conn: AsyncConnection, first: int, last: int | None = None) -> None:
    """Unstage the rows of staging keys ``first`` to ``last`` (default: just ``first``)."""
    for table in STAGING_TABLES:
        await conn.execute(delete(table).where(
            table.c.import_id.between(first, first if last is None else last)))


async def _vacuum_staging(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """PostgreSQL: reclaim the rows earlier chunks unstaged.

    Otherwise every chunk's scans of the staging tables also read all the dead rows of the
    chunks before it (autovacuum comes by far less often than a chunk does).
    """
    engine = sessionmaker.kw["bind"]
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # TRUNCATE false: the next chunk refills the pages, and giving them back would wait
        # (up to 5 s) for an exclusive lock the other phase's transaction is in the way of.
        await auto.exec_driver_sql(
            f"VACUUM (TRUNCATE false) {', '.join(t.name for t in STAGING_TABLES)}")


# --- the run -----------------------------------------------------------------------------

async def _session(sessionmaker: async_sessionmaker[AsyncSession], t: int) -> AsyncSession:
    session = sessionmaker()
    session.info["tenant_id"] = t
    return session


async def _start(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun,
                 total: int) -> None:
    """Forget what an earlier attempt reported; keep its touched debtors for the rebalance."""
    async with await _session(sessionmaker, run.tenant_id) as session, session.begin():
        await _clear_staging(await session.connection(), *_stage_keys(run.id))
        await session.execute(delete(ImportRowError).where(ImportRowError.import_id == run.id))
        await session.execute(update(ImportRun).where(ImportRun.id == run.id).values(
            status="running", rows_total=total, rows_applied=0, rows_failed=0, error=None))


def _parse_next(it: Iterator[rowmod.Chunk], key: int, copy: bool) -> _Parsed | None:
    started = time.perf_counter()
    chunk = next(it, None)
    parsed = None if chunk is None else _Parsed(chunk, key,
                                                _copy_blocks(chunk, key) if copy else None)
    PHASES["parse (thread)"] = PHASES.get("parse (thread)", 0.0) + time.perf_counter() - started
    return parsed


async def _commit_debtors(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun,
                          parsed: _Parsed, state: _LoadState) -> int:
    """Phase one of a chunk, one transaction: stage it, reject rows naming unknown debtors or
    portfolios, upsert debtors with their tags and contacts, record row errors. Returns the
    number of rows rejected here."""
    t, stage = run.tenant_id, parsed.key
    async with await _session(sessionmaker, t) as session, session.begin():
        conn = await session.connection()
        await _tune(conn)
        await _stage_chunk(conn, parsed, state)
        state.chunks_staged += 1
        async with _phase("resolve_refs"):
            await _sql(conn, _RESOLVE_REFS, t=t, stage=stage, true=True)
        async with _phase("reject_refs"):
            rejected = await _reject_unknown_refs(conn, t, stage)
        await _apply_debtors(conn, t, stage)
        errors = sorted([*parsed.chunk.errors, *parsed.chunk.warnings, *rejected],
                        key=lambda e: e.line)
        if errors:
            await session.execute(insert(ImportRowError), [
                {"tenant_id": t, "import_id": run.id, "line": e.line, "field": e.field,
                 "code": e.code, "reason": e.reason[:1000], "severity": e.severity}
                for e in errors])
    return len(rejected)


async def _commit_money(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun,
                        parsed: _Parsed, rejected: int, state: _LoadState,
                        result: ImportResult) -> None:
    """Phase two of a chunk, one transaction: obligations and payments, unstage, count."""
    chunk = parsed.chunk
    async with await _session(sessionmaker, run.tenant_id) as session, session.begin():
        conn = await session.connection()
        await _tune(conn)
        await _apply_money(conn, run.tenant_id, run.id, parsed.key, state)
        async with _phase("clear_staging"):
            await _clear_staging(conn, parsed.key)
        result.rows_applied += chunk.rows - len(chunk.errors) - rejected
        result.rows_failed += len(chunk.errors) + rejected
        await session.execute(update(ImportRun).where(ImportRun.id == run.id).values(
            rows_applied=result.rows_applied, rows_failed=result.rows_failed))


def _read_options(run: ImportRun) -> rowmod.ReadOptions:
    """How to read the run's file (recorded at upload; a run from before that: the old
    fixed UTF-8, ``,`` and ``.``)."""
    return rowmod.ReadOptions(run.encoding or "utf-8", run.delimiter or ",",
                              run.decimal_mark or ".")


async def _load_all(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun,
                    result: ImportResult, progress: Progress) -> None:
    """Load every chunk in two phases (:func:`_commit_debtors`, then :func:`_commit_money`).

    While chunk *n*'s money phase runs, a thread parses chunk *n + 2* and, on PostgreSQL,
    chunk *n + 1*'s debtor phase runs on a second connection, so the server works on two
    cores. A money phase needs only the debtors of its own and earlier chunks, all
    committed by then; the two phases lock nothing the other writes (the debtor upsert
    never changes a key column, so it does not wait on the obligations' foreign-key locks).
    SQLite has one writer: there the phases simply alternate. ``result`` counts the rows of
    the chunks committed so far.
    """
    total = result.rows_total
    state = _LoadState()
    async with await _session(sessionmaker, run.tenant_id) as session:
        conn = await session.connection()
        pg = conn.dialect.name == "postgresql"
        if pg:
            state.fresh_obligations = await _fresh(conn, "obligations", run.tenant_id)
            state.fresh_payments = await _fresh(conn, "payments", run.tenant_id)
    it = rowmod.chunks(run.file_path, run.format, rowmod.CHUNK_ROWS, _read_options(run))
    keys = (_stage_key(run.id, n) for n in itertools.count())
    pending = asyncio.ensure_future(asyncio.to_thread(_parse_next, it, next(keys), pg))
    money: asyncio.Future[None] | None = None
    vacuum: asyncio.Future[None] | None = None

    async def money_then_progress(parsed: _Parsed, rejected: int) -> None:
        await _commit_money(sessionmaker, run, parsed, rejected, state, result)
        await progress(result.rows_applied + result.rows_failed, total)

    try:
        while True:
            async with _phase("wait_parse"):
                parsed = await pending
            if parsed is None:
                break
            pending = asyncio.ensure_future(asyncio.to_thread(_parse_next, it, next(keys), pg))
            if pg and state.chunks_staged:
                if vacuum is not None:
                    await vacuum
                # Alongside the debtor phase: the two only meet on the staging tables'
                # ANALYZE/VACUUM lock, which either holds for a moment.
                vacuum = asyncio.ensure_future(_vacuum_staging(sessionmaker))
            async with _phase("debtor_phase"):
                rejected = await _commit_debtors(sessionmaker, run, parsed, state)
            if money is not None:
                async with _phase("wait_money"):
                    await money
            money = asyncio.ensure_future(money_then_progress(parsed, rejected))
            if not pg:
                await money
        if money is not None:
            await money
    finally:
        pending.cancel()
        for task in (money, vacuum):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _finish(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun, actor: Actor,
                  result: ImportResult, failure: ImportFailed | None = None) -> None:
    """Rebalance the touched debtors and settle their promises and plans, close the run and
    audit it, in one transaction. ``failure``: the run failed after ``result``'s chunks
    committed; it ends ``failed`` (or ``queued`` for a retry) with that error."""
    t = run.tenant_id
    async with await _session(sessionmaker, t) as session, session.begin():
        scope = DebtorScope("SELECT debtor_id FROM import_touched_debtors WHERE import_id = :imp",
                            {"imp": run.id})
        conn = await session.connection()
        if failure is not None:
            await _clear_staging(conn, *_stage_keys(run.id))
        if conn.dialect.name == "postgresql":
            # The tables just grew (maybe from nothing): without fresh statistics the planner
            # picks nested loops over what it believes are a few rows.
            async with _phase("analyze_final"):
                await conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
                await conn.exec_driver_sql("SET LOCAL jit = off")
                for table in ("import_touched_debtors", "debtors", "obligations", "payments",
                              "allocations"):
                    await conn.exec_driver_sql(f"ANALYZE {table}")
        today = await tenant_today(session, t)
        touched = select(touched_debtors.c.debtor_id).where(
            touched_debtors.c.import_id == run.id)
        async with _phase("offers"):
            # An offer the file's payments pay in full gets its credit note before the
            # allocation runs (as the change chain's offers step does for one debtor),
            # under the money lock the rebalance takes (taken here, before the read).
            await lock_scope(session, t, scope)
            await apply_paid_offers_many(session, t, touched, today)
        async with _phase("rebalance"):
            await rebalance(session, t, scope, today)
        # The file's payments may keep (or, reversed, un-keep) promises and complete plans.
        await settle_debtors(session, t, lambda col: col.in_(touched), today, clock.now())
        # The rest of the chain over those debtors: re-segmented, then replanned (one pass
        # each, restricted to them).
        async with _phase("replan"):
            await changes.debtors_changed(session, t, touched, today=today)
        await session.execute(delete(touched_debtors).where(touched_debtors.c.import_id == run.id))
        if failure is None:
            await session.execute(update(ImportRun).where(ImportRun.id == run.id).values(
                status="succeeded", finished_at=clock.now(), rows_total=result.rows_total,
                rows_applied=result.rows_applied, rows_failed=result.rows_failed))
            audit.record(session, actor, "import.completed", "import", run.id,
                         {"format": run.format, "filename": run.filename, **result.as_dict()})
        else:
            await session.execute(_mark_failed(run, failure))
            audit.record(session, actor, "import.failed", "import", run.id,
                         {"format": run.format, "filename": run.filename,
                          "error": str(failure), "retry": failure.retry, **result.as_dict()})


def _mark_failed(run: ImportRun, failure: ImportFailed) -> Any:
    """The UPDATE that records ``failure`` on the run."""
    return update(ImportRun).where(ImportRun.id == run.id).values(
        status="queued" if failure.retry else "failed",
        finished_at=None if failure.retry else clock.now(), error=str(failure)[:1000])


async def _end_failed(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun,
                      actor: Actor, result: ImportResult, failure: ImportFailed) -> None:
    """Close a failed run with the final step of a successful one (see the module doc).

    Should that step fail too (the database is gone), the run is only marked; the touched
    debtors stay recorded, and the next attempt, or a later import of the same debtors,
    rebalances them.
    """
    try:
        await _finish(sessionmaker, run, actor, result, failure)
    except Exception:
        log.exception("could not rebalance after a failed import", extra={"import_id": run.id})
        async with await _session(sessionmaker, run.tenant_id) as session, session.begin():
            await _clear_staging(await session.connection(), *_stage_keys(run.id))
            await session.execute(_mark_failed(run, failure))


async def _ended(sessionmaker: async_sessionmaker[AsyncSession], run: ImportRun) -> None:
    """The import ended for good: delete its upload unless it is to be kept a while.

    Never raises: the import's outcome is recorded already, and a file left behind is
    deleted by the periodic purge (:func:`cartera.imports.retention.purge_expired_uploads`).
    """
    if get_settings().import_retention_days > 0:
        return
    try:
        await delete_upload(sessionmaker, run.id, run.file_path)
    except Exception:
        log.exception("could not delete an import's upload", extra={"import_id": run.id})


_RUNNING: set[int] = set()
_RUNNING_GUARD = threading.Lock()


def _claim(import_id: int) -> bool:
    with _RUNNING_GUARD:
        if import_id in _RUNNING:
            return False
        _RUNNING.add(import_id)
        return True


async def run_import(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                     actor: Actor, progress: Progress, *,
                     may_retry: bool = False) -> ImportResult:
    """Run import ``import_id`` of ``actor.tenant_id`` to completion (see the module doc).

    Idempotent: safe to call again after a crash or for an import that already finished
    (once its upload is deleted, a finished import is not run again: its recorded counts are
    returned, or its failure raised again). Two deliveries of the same import in one process
    (even from different event loops) run one after the other. On failure raises
    :class:`ImportFailed`, the run left as it says; ``may_retry``: a transient failure
    leaves the import ``queued`` for another attempt instead of ``failed``.
    """
    # Polled, not an asyncio.Event: the holder may run on another event loop (thread).
    while not _claim(import_id):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    try:
        return await _run_import(sessionmaker, import_id, actor, progress, may_retry)
    finally:
        with _RUNNING_GUARD:
            _RUNNING.discard(import_id)


async def _run_import(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                      actor: Actor, progress: Progress, may_retry: bool) -> ImportResult:
    async with await _session(sessionmaker, actor.tenant_id) as session:
        run = await session.scalar(select(ImportRun).where(ImportRun.id == import_id))
    if run is None:
        raise LookupError(f"import {import_id} not found for tenant {actor.tenant_id}")
    if run.file_deleted_at is not None:
        return _recorded(run)
    result = ImportResult()
    try:
        result.rows_total = await asyncio.to_thread(rowmod.count_rows, run.file_path, run.format)
        await _start(sessionmaker, run, result.rows_total)
        await progress(0, result.rows_total)
        await _load_all(sessionmaker, run, result, progress)
        await _finish(sessionmaker, run, actor, result)
    except Exception as exc:
        failure = ImportFailed(failure_reason(exc, run.id),
                               retry=may_retry and is_transient_db_error(exc))
        await _end_failed(sessionmaker, run, actor, result, failure)
        if not failure.retry:
            await _ended(sessionmaker, run)
        raise failure from exc
    await _ended(sessionmaker, run)
    return result


def _recorded(run: ImportRun) -> ImportResult:
    """What a finished import recorded (its file is gone: it cannot run again)."""
    if run.status != "succeeded":
        raise ImportFailed(run.error or "the import failed", retry=False)
    return ImportResult(run.rows_total, run.rows_applied, run.rows_failed)


# --- applying one chunk in the caller's transaction (the ERP sync) -----------------------

class ChunkLoad(_LoadState):
    """What the chunks of one :func:`apply_chunk` caller share (staging statistics and the
    first-load shortcuts, see :class:`_LoadState`)."""


async def new_chunk_load(conn: AsyncConnection, t: int) -> ChunkLoad:
    """A :class:`ChunkLoad` for a run of chunks into tenant ``t``."""
    load = ChunkLoad()
    if conn.dialect.name == "postgresql":
        load.fresh_obligations = await _fresh(conn, "obligations", t)
        load.fresh_payments = await _fresh(conn, "payments", t)
    return load


Adjust = Callable[[AsyncConnection, int], Awaitable[None]]


async def apply_chunk(conn: AsyncConnection, t: int, chunk: rowmod.Chunk, *, stage_key: int,
                      touched_key: int, load: ChunkLoad,
                      adjust: Adjust | None = None) -> list[rowmod.RowError]:
    """Apply one validated chunk with the import's upsert, inside the caller's transaction
    (so the caller can commit something of its own with it, e.g. a sync cursor).

    The same steps as an import's chunk, on one connection: stage, reject rows naming
    unknown debtors or portfolios (returned, as the import's row errors), upsert debtors,
    tags, contacts, obligations and payments, record the debtors whose money changed under
    ``touched_key`` in ``import_touched_debtors`` (rebalance them with :func:`rebalance`
    when the caller's run ends), unstage. ``stage_key`` must not be used by any other
    running load (imports use ``import_id * 1024 + n``; give negative keys).

    ``adjust(conn, stage_key)`` runs after the references are resolved and before anything
    is written: the caller's chance to amend the staged rows set-based (the ERP sync keeps
    Cartera's collection state and contact data there)."""
    pg = conn.dialect.name == "postgresql"
    parsed = _Parsed(chunk, stage_key, _copy_blocks(chunk, stage_key) if pg else None)
    await _tune(conn)
    await _stage_chunk(conn, parsed, load)
    load.chunks_staged += 1
    async with _phase("resolve_refs"):
        await _sql(conn, _RESOLVE_REFS, t=t, stage=stage_key, true=True)
    async with _phase("reject_refs"):
        rejected = await _reject_unknown_refs(conn, t, stage_key)
    if adjust is not None:
        await adjust(conn, stage_key)
    await _apply_debtors(conn, t, stage_key)
    await _apply_money(conn, t, touched_key, stage_key, load)
    async with _phase("clear_staging"):
        await _clear_staging(conn, stage_key)
    return rejected


async def rebalance_touched(session: AsyncSession, t: int, touched_key: int) -> None:
    """The end of a run of :func:`apply_chunk`: rebalance the debtors recorded under
    ``touched_key``, settle their promises and plans, re-segment and replan them, forget
    them (as an import's end)."""
    scope = DebtorScope("SELECT debtor_id FROM import_touched_debtors WHERE import_id = :imp",
                        {"imp": touched_key})
    today = await tenant_today(session, t)
    touched = select(touched_debtors.c.debtor_id).where(touched_debtors.c.import_id == touched_key)
    async with _phase("offers"):
        await lock_scope(session, t, scope)
        await apply_paid_offers_many(session, t, touched, today)
    async with _phase("rebalance"):
        await rebalance(session, t, scope, today)
    await settle_debtors(session, t, lambda col: col.in_(touched), today, clock.now())
    async with _phase("replan"):
        await changes.debtors_changed(session, t, touched, today=today)
    await session.execute(delete(touched_debtors).where(touched_debtors.c.import_id == touched_key))


async def count_staged_changes(conn: AsyncConnection, t: int, stage: int) -> int:
    """How many of a staged chunk's debtors, obligations and payments the upsert will insert
    or change (run after the references are resolved: see :func:`apply_chunk`'s ``adjust``)."""
    dialect = conn.dialect.name
    debtor = _differs([(f"d.{c}", f"s.{c}") for c in _DEBTOR_COLS], dialect)
    obligation = _obligation_changed(dialect, "o", dict(_OBLIGATION_VALUES), "s")
    payment = _differs([(f"p.{c}", v) for c, v in _PAYMENT_VALUES], dialect)
    total = 0
    for sql in (
        f"""SELECT count(*) FROM import_stage_debtors s
            LEFT JOIN debtors d ON d.tenant_id = :t AND d.external_ref = s.external_ref
            WHERE s.import_id = :stage AND (d.id IS NULL OR {debtor})""",
        f"""SELECT count(*) {_OBLIGATION_FROM}
            LEFT JOIN obligations o ON o.tenant_id = :t AND o.external_ref = s.external_ref
            WHERE s.import_id = :stage AND (o.id IS NULL OR {obligation})""",
        f"""SELECT count(*) {_PAYMENT_FROM}
            LEFT JOIN payments p ON p.tenant_id = :t AND p.external_ref = s.external_ref
            WHERE s.import_id = :stage AND (p.id IS NULL OR {payment})""",
    ):
        total += int((await conn.execute(text(sql), {"t": t, "stage": stage})).scalar() or 0)
    return total
