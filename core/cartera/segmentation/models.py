"""Tables of the segmentation domain.

A tenant's rule set is its active segments in ``position`` order; a debtor belongs to the
first segment whose rule matches (the last one is a catch-all). Replacing the rule set
bumps ``version``; segments that disappear are retired (``active`` false), never deleted
(nothing in the code base deletes a segment, stage or run), so the placements and their
history, which carry no foreign keys, keep pointing at real rows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    JsonType,
    TenantScoped,
    UtcDateTime,
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


class Placement(DebtorOwned, Base):
    """A debtor's current stage and segment: one row per debtor once first evaluated.

    The stage follows days past due unless set by hand (``stage_manual``: it sticks until
    released); the segment is NULL until the tenant has a rule set. One table, not one per
    dimension, so the evaluation pass joins it once and a first run writes one row per
    debtor (migration 0011).

    No foreign keys, like the history: a row is only written by the segmentation code for
    a debtor it has just read, and stages and segments are retired, never deleted. At 1M
    debtors the per-row check of a debtor reference alone cost 5.5 s of a first run. What a
    reference would guarantee is kept by two locks instead (:mod:`cartera.segmentation.
    apply`): a whole-portfolio run and a debtor's deletion exclude each other, and a one-
    debtor pass locks its debtor row; a deleted debtor's row is deleted with them.
    """

    __tablename__ = "debtor_placements"
    __table_args__ = (
        # Per segment and per stage counts and listings of one tenant, index-only.
        Index("ix_debtor_placements_tenant_segment", "tenant_id", "segment_id", "stage_id"),
    )

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stage_id: Mapped[int] = mapped_column(BigId)
    stage_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    stage_reason: Mapped[str | None] = mapped_column(String(500))
    stage_set_by: Mapped[str | None] = mapped_column(String(200))
    stage_set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    segment_id: Mapped[int | None] = mapped_column(BigId)
    segment_entered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PlacementMove(DebtorOwned, Base):
    """Append-only history of placements: one row each time a debtor's stage or segment
    changes (or a stage is pinned or released by hand), with both parts when both change.

    The stage part is present when ``to_stage_id`` is set (with ``manual``, ``reason`` and
    ``actor``), the segment part when ``to_segment_id`` is (with ``run_id`` when a run moved
    them); ``from_*`` is NULL on a first placement. It feeds the stage and segment history
    endpoints and roll-rate figures. An event log, so no foreign keys (the stages, segments
    and runs it names are never deleted; a deleted debtor's history is deleted with them).
    """

    __tablename__ = "placement_history"
    __table_args__ = (Index("ix_placement_history_debtor", "tenant_id", "debtor_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    from_stage_id: Mapped[int | None] = mapped_column(BigId)
    to_stage_id: Mapped[int | None] = mapped_column(BigId)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str | None] = mapped_column(String(200))
    from_segment_id: Mapped[int | None] = mapped_column(BigId)
    to_segment_id: Mapped[int | None] = mapped_column(BigId)
    run_id: Mapped[int | None] = mapped_column(BigId)
