"""Tables of the segmentation domain.

A tenant's rule set is its active segments in ``position`` order; a debtor belongs to the
first segment whose rule matches (the last one is a catch-all). Replacing the rule set
bumps ``version``; segments that disappear are retired (``active`` false), never deleted
(nothing in the code base deletes a segment, stage or run), so the history tables, which
carry no foreign keys, keep pointing at real rows. The current-state tables
(``segment_memberships``, ``debtor_stages``) keep theirs: to the debtor (cascading on its
deletion) and to the segment or stage.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    JsonType,
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    utcnow,
)


class Segment(TenantScoped, Base):
    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_segments_tenant_active_position", "tenant_id", "active", "position"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    position: Mapped[int] = mapped_column(Integer)
    rule: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    """The rule-set version this segment was last saved in."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SegmentMembership(DebtorOwned, Base):
    """The debtor's current segment, written set-based by every evaluation."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_tenant_segment", "tenant_id", "segment_id"),
                      debtor_fk())

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segments.id", ondelete="CASCADE"))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SegmentMove(DebtorOwned, Base):
    """Append-only membership history: one row each time a debtor enters a segment.

    An event log, so it has no foreign keys (migration 0009): the segments and runs it
    names are retired or kept, never deleted, and a deleted debtor's history is deleted
    with them by :func:`cartera.portfolio.service.delete_debtor`. A first run writes one
    row per debtor; at 1M debtors PostgreSQL's per-row checks of the four references
    (debtor, from, to, run) cost more than the writes themselves.
    """

    __tablename__ = "segment_history"
    __table_args__ = (
        Index("ix_segment_history_debtor", "tenant_id", "debtor_id", "at"),
        Index("ix_segment_history_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    from_segment_id: Mapped[int | None] = mapped_column(BigId)
    to_segment_id: Mapped[int | None] = mapped_column(BigId)
    run_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SegmentRun(TenantScoped, Base):
    """One whole-portfolio evaluation and its summary."""

    __tablename__ = "segment_runs"
    __table_args__ = (Index("ix_segment_runs_tenant", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    as_of: Mapped[date | None] = mapped_column(Date)
    ruleset_version: Mapped[int | None] = mapped_column(Integer)
    debtors: Mapped[int] = mapped_column(Integer, default=0)
    moves: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Stage(TenantScoped, Base):
    """A collection stage (fase de cobranza) and the days-past-due range it covers.

    A tenant's stages are its active rows in ``position`` order (the escalation order); their
    ranges ascend with it, are contiguous and cover 0..∞ (the last has no ``max_dpd``).
    Stages removed by a replacement are retired (``active`` false), never deleted, so the
    stage history keeps pointing at real rows.
    """

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    min_dpd: Mapped[int] = mapped_column(Integer)
    max_dpd: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DebtorStage(DebtorOwned, Base):
    """A debtor's current stage: from days past due, or set by hand (``manual``, sticks
    until released)."""

    __tablename__ = "debtor_stages"
    __table_args__ = (Index("ix_debtor_stages_tenant_stage", "tenant_id", "stage_id"),
                      debtor_fk())

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stage_id: Mapped[int] = mapped_column(BigId, ForeignKey("stages.id", ondelete="CASCADE"))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    set_by: Mapped[str | None] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StageMove(DebtorOwned, Base):
    """Append-only stage history: one row each time a debtor's stage changes (or is pinned
    or released by hand).

    An event log without foreign keys, like :class:`SegmentMove` (see there): stages are
    retired, never deleted, and a deleted debtor's history goes with them."""

    __tablename__ = "stage_history"
    __table_args__ = (Index("ix_stage_history_debtor", "tenant_id", "debtor_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    from_stage_id: Mapped[int | None] = mapped_column(BigId)
    to_stage_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(200))
