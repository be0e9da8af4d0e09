"""The record of every gate decision, and the report computed from it.

Each path that acts on a verdict (the single send, the batch sender, the strategy planner
and dispatcher) collects its decisions with :func:`rows` and writes them with one
:func:`record` per batch (one INSERT, whatever the batch's size). The report
groups them in SQL per pack (``source``) and rule (``code``); the median deferral is picked
with a window function, so no row is loaded into Python but the medians themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.compliance import schemas
from cartera.compliance.models import ComplianceDecision
from cartera.db.base import table_of

PATHS = ("send", "batch", "planner", "dispatch")
_MAX_SECONDS = 2**31 - 1


def rows(tenant_id: int, path: str, decided_at: datetime, verdict: Any, channel: str,
         debtor_id: int | None, subject_id: int | None = None,
         judged_at: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of one decision (a gate ``Verdict`` or its JSON form): one per reason,
    the first ``counted``. ``judged_at`` is the instant the contact was judged for
    (default ``decided_at``): a deferral's length is ``until`` minus it."""
    if not isinstance(verdict, dict):
        verdict = {"decision": verdict.decision, "until": verdict.until,
                   "reasons": [{"source": r.source, "code": r.code} for r in verdict.reasons]}
    decision = verdict.get("decision")
    until = verdict.get("until")
    if isinstance(until, str):
        until = datetime.fromisoformat(until)
    deferral = None
    if decision == "defer" and isinstance(until, datetime):
        deferral = max(0, min(_MAX_SECONDS, int(
            (until - (judged_at or decided_at)).total_seconds())))
    reasons = verdict.get("reasons") or [{"source": "gate", "code": "none"}]
    return [{"tenant_id": tenant_id, "decided_at": decided_at, "path": path,
             "decision": decision, "source": str(r.get("source") or "gate")[:64],
             "code": str(r.get("code") or "none")[:64], "counted": i == 0,
             "channel": channel, "debtor_id": debtor_id, "subject_id": subject_id,
             "deferral_seconds": deferral}
            for i, r in enumerate(reasons)]


_COLUMNS = ("tenant_id", "decided_at", "path", "decision", "source", "code", "counted",
            "channel", "debtor_id", "subject_id", "deferral_seconds")
_INSERT_ROWS = text(
    "INSERT INTO compliance_decisions (" + ", ".join(_COLUMNS) + ") SELECT "
    + ", ".join(f"v.{c}" for c in _COLUMNS) + " FROM jsonb_to_recordset(CAST(:rows AS jsonb))"
    " AS v(tenant_id bigint, decided_at timestamptz, path text, decision text, source text,"
    " code text, counted boolean, channel text, debtor_id bigint, subject_id bigint,"
    " deferral_seconds integer)")


async def record(session: AsyncSession, found: list[dict[str, Any]]) -> None:
    """Write the rows of a batch of decisions: one INSERT (on PostgreSQL one ``INSERT ...
    SELECT FROM jsonb_to_recordset(...)``: a statement of constant text and one parameter
    whatever the batch's size)."""
    if not found:
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(table_of(ComplianceDecision)), found)
        return
    await session.execute(_INSERT_ROWS, {"rows": msgspec.json.encode(
        [{c: r[c] for c in _COLUMNS} for r in found]).decode()})


_SHARED_COLUMNS = tuple(c for c in _COLUMNS if c not in ("debtor_id", "subject_id"))
_INSERT_SHARED = text(
    "INSERT INTO compliance_decisions (" + ", ".join(_COLUMNS) + ") SELECT "
    + ", ".join(f"m.{c}" if c in ("debtor_id", "subject_id") else f"r.{c}" for c in _COLUMNS)
    + " FROM jsonb_to_recordset(CAST(:members AS jsonb)) AS m(g integer, debtor_id bigint,"
    " subject_id bigint) JOIN jsonb_to_recordset(CAST(:shared AS jsonb)) AS r(g integer,"
    " tenant_id bigint, decided_at timestamptz, path text, decision text, source text,"
    " code text, counted boolean, channel text, deferral_seconds integer) ON r.g = m.g"
    " ORDER BY m.subject_id, r.counted DESC")


async def record_shared(session: AsyncSession, shared: dict[int, list[dict[str, Any]]],
                        members: Sequence[tuple[int, int | None, int | None]]) -> None:
    """Write decisions that many contacts share (one verdict judged once for a group):
    ``shared`` maps a group number to the rows of its decision (:func:`rows`, their debtor
    and subject ignored), ``members`` lists each contact's (group, debtor id, subject id).
    Each member gets its own copy of its group's rows, as :func:`record` would write them;
    on PostgreSQL in one ``INSERT ... SELECT`` joining the two (each group's rows travel
    once, whatever the number of its members)."""
    if not members:
        return
    if session.get_bind().dialect.name != "postgresql":
        await record(session, [{**r, "debtor_id": debtor_id, "subject_id": subject_id}
                               for g, debtor_id, subject_id in members for r in shared[g]])
        return
    await session.execute(_INSERT_SHARED, {
        "shared": msgspec.json.encode([{"g": g, **{c: r[c] for c in _SHARED_COLUMNS}}
                                       for g, found in shared.items() for r in found]).decode(),
        "members": msgspec.json.encode([{"g": g, "debtor_id": d, "subject_id": s}
                                        for g, d, s in members]).decode()})


async def report(session: AsyncSession, tenant_id: int, start: datetime,
                 end: datetime) -> schemas.ReportOut:
    """Per pack and rule: decisions that allowed, deferred and denied in ``[start, end)``,
    and the median deferral of the deferred ones; per path, the decisions themselves."""
    d = ComplianceDecision
    period = (d.tenant_id == tenant_id, d.decided_at >= start, d.decided_at < end)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for source, code, decision, n in (await session.execute(
            select(d.source, d.code, d.decision, func.count()).where(*period)
            .group_by(d.source, d.code, d.decision))).all():
        counts.setdefault((source, code), {"allow": 0, "defer": 0, "deny": 0})[decision] = n
    paths: dict[str, dict[str, int]] = {}
    for path, decision, n in (await session.execute(
            select(d.path, d.decision, func.count()).where(*period, d.counted.is_(True))
            .group_by(d.path, d.decision))).all():
        paths.setdefault(path, {"allow": 0, "defer": 0, "deny": 0})[decision] = n
    ranked = select(
        d.source, d.code, d.deferral_seconds,
        func.row_number().over(partition_by=(d.source, d.code),
                               order_by=d.deferral_seconds).label("rn"),
        func.count().over(partition_by=(d.source, d.code)).label("n")).where(
        *period, d.decision == "defer", d.deferral_seconds.is_not(None)).subquery()
    middle: dict[tuple[str, str], list[int]] = {}
    for source, code, seconds in (await session.execute(select(
            ranked.c.source, ranked.c.code, ranked.c.deferral_seconds).where(or_(
            ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)))).all():
        middle.setdefault((source, code), []).append(int(seconds))
    rules = [schemas.RuleCount(
        source=source, code=code, allowed=c["allow"], deferred=c["defer"], denied=c["deny"],
        median_deferral_seconds=int(sum(middle[(source, code)]) / len(middle[(source, code)]))
        if middle.get((source, code)) else None)
        for (source, code), c in sorted(counts.items())]
    by_path = [schemas.PathCount(path=p, allowed=c["allow"], deferred=c["defer"],
                                 denied=c["deny"]) for p, c in sorted(paths.items())]
    return schemas.ReportOut(period_start=start, period_end=end,
                             contacts=sum(sum(c.values()) for c in paths.values()),
                             rules=rules, paths=by_path)


async def purge_older_than(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete at most ``limit`` decisions made before ``cutoff``, oldest first, and return
    how many went. Walks the primary key from its low end (ids grow with ``decided_at``), so
    each call reads about what it deletes whatever the log's size."""
    d = ComplianceDecision
    oldest = select(d.id).where(d.decided_at < cutoff).order_by(d.id).limit(limit)
    done = await session.execute(delete(d).where(d.id.in_(oldest.scalar_subquery())))
    return int(done.rowcount or 0)  # type: ignore[attr-defined]
