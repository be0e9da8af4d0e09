"""Tables of the strategy engine: strategies, their versions, enrollments and actions.

A version's bindings (segments, stages), entry and stop rules and steps are stored as JSON
on the version: an active version is immutable, and the planner compiles a tenant's few
active versions into one statement (CASE over version and step), so no join to a step
table is needed on the hot path.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    JsonType,
    SealedString,
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    deferred_check,
    utcnow,
)

VERSION_STATUSES = ("draft", "active", "retired")
ENROLLMENT_STATUSES = ("active", "paused", "completed", "stopped", "exited")
LIVE_ENROLLMENT = "status IN ('active', 'paused')"
ACTION_STATUSES = ("planned", "superseded", "deferred", "denied", "dispatched", "done",
                   "cancelled")


class Strategy(TenantScoped, Base):
    """A named strategy; ``priority`` orders strategies (1 first) when their steps compete
    for a debtor's one contact of the day."""

    __tablename__ = "strategies"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class StrategyVersion(TenantScoped, Base):
    """One version of a strategy: draft (editable), active (at most one per strategy,
    immutable) or retired."""

    __tablename__ = "strategy_versions"
    __table_args__ = (
        UniqueConstraint("strategy_id", "number"),
        Index("uq_strategy_versions_one_active", "strategy_id", unique=True,
              postgresql_where=text("status = 'active'"),
              sqlite_where=text("status = 'active'")),
        CheckConstraint("status IN ('draft', 'active', 'retired')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id",
                                                               ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    segment_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    stage_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    """Empty: any stage."""
    entry_rule: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    stop_rule: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    in_flight: Mapped[str | None] = mapped_column(String(16))
    """The policy applied to enrollments of the previous version when this one was
    activated: finish, same_key or restart."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Enrollment(DebtorOwned, Base):
    """A debtor's journey through one strategy version: ``step_index`` is the next step
    to plan. At most one live (active or paused) enrollment per debtor, whatever the
    strategy (migration 0025): a debtor is worked by one strategy at a time, the one of
    the best priority among those binding their segment when they enter it; the index
    makes it hold when a pass and a replan enroll them at once."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("uq_enrollments_live", "debtor_id", unique=True,
              postgresql_where=text(LIVE_ENROLLMENT), sqlite_where=text(LIVE_ENROLLMENT)),
        Index("ix_enrollments_tenant_status", "tenant_id", "status"),
        Index("ix_enrollments_tenant_debtor", "tenant_id", "debtor_id"),
        # What an action's one foreign key references (migration 0047).
        UniqueConstraint("id", "tenant_id", "debtor_id"),
        CheckConstraint("status IN ('active', 'paused', 'completed', 'stopped', 'exited')",
                        name="status_known"),
        debtor_fk(deferrable=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey(
        "strategies.id", ondelete="CASCADE", **deferred_check()))
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey(
        "strategy_versions.id", ondelete="CASCADE", **deferred_check()))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    reason: Mapped[str | None] = mapped_column(String(500))
    entered_on: Mapped[date] = mapped_column(Date)
    """The tenant's business day of enrollment (the ``segment_entry`` anchor)."""
    last_step_on: Mapped[date | None] = mapped_column(Date)
    """The day the previous step was planned for (the ``previous_step`` anchor)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


UNGATED = "status = 'planned' AND verdict IS NULL"
"""Planned actions the gate has not judged yet."""
DUE_ACTION = "status IN ('planned', 'deferred')"


class Action(DebtorOwned, Base):
    """One planned step of an enrollment for one local day of the debtor (``due_on``).

    ``(enrollment_id, tenant_id, debtor_id)`` references the enrollment's own three
    columns (migration 0047): an action names its enrollment's tenant and debtor, and
    through the enrollment's ``(tenant_id, debtor_id)`` reference never another tenant's
    debtor; deleting a debtor deletes their enrollments and so their actions. One
    foreign-key check per inserted action instead of two (one to the enrollment, one to
    the debtor): a daily pass inserts an action per enrolled debtor."""

    __tablename__ = "actions"
    __table_args__ = (
        # Unique as (enrollment, step, day, attempt) is (an enrollment fixes its debtor), and
        # the debtor's actions found by it: one index fewer per inserted action (0050).
        UniqueConstraint("debtor_id", "enrollment_id", "step_index", "due_on", "attempt"),
        Index("ix_actions_tenant_due", "tenant_id", "due_on", "status"),
        # The planner's gate: the contacts a pass planned, not the history (migration 0034).
        Index("ix_actions_ungated", "tenant_id", "debtor_id",
              postgresql_where=text(UNGATED), sqlite_where=text(UNGATED)),
        # The due actions in dispatch order (dispatch and execute claim from it a batch at a
        # time instead of sorting every due action for each batch; migration 0036).
        Index("ix_actions_due", "tenant_id", "planned_at", "id",
              postgresql_where=text(DUE_ACTION), sqlite_where=text(DUE_ACTION)),
        CheckConstraint("status IN ('planned', 'superseded', 'deferred', 'denied', "
                        "'dispatched', 'done', 'cancelled')", name="status_known"),
        ForeignKeyConstraint(["enrollment_id", "tenant_id", "debtor_id"],
                             ["enrollments.id", "enrollments.tenant_id",
                              "enrollments.debtor_id"], ondelete="CASCADE",
                             **deferred_check()),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    enrollment_id: Mapped[int] = mapped_column(BigId)
    strategy_id: Mapped[int] = mapped_column(BigId)
    version_id: Mapped[int] = mapped_column(BigId)
    priority: Mapped[int] = mapped_column(Integer)
    step_index: Mapped[int] = mapped_column(Integer)
    step_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    """The first channel of a message step (the one tried first)."""
    anchor_on: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    superseded_by: Mapped[int | None] = mapped_column(BigId)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """What dispatch did: the interaction, the channel used, the channels skipped and why;
    then what came of it when it fell back (:mod:`cartera.strategies.feedback`)."""
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Where in the step's channel fallback this action starts: 0, or the index of the
    next channel when the action ``fallback_of`` failed or was not delivered in time."""
    fallback_of: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PlannerSettings(Base):
    """A tenant's daily planning hour (local time) and the last day planned by the job."""

    __tablename__ = "strategy_settings"

    tenant_id: Mapped[int] = mapped_column(BigId, ForeignKey("tenants.id", ondelete="CASCADE"),
                                           primary_key=True)
    plan_hour: Mapped[int] = mapped_column(Integer, default=6)
    last_planned_on: Mapped[date | None] = mapped_column(Date)
    min_gap_hours: Mapped[int | None] = mapped_column(Integer)
    """The contact policy: at least this many hours between two contacts of a debtor
    (None: no gap beyond the one contact a day)."""
    weekly_cap: Mapped[int | None] = mapped_column(Integer)
    """The contact policy: at most this many contacts of a debtor in any 7 days (None: no
    cap beyond the one contact a day)."""
    channel_prices: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """The tenant's price hints per channel (``{"sms": {"amount": "0.05", "currency":
    "EUR"}}``), used by simulation where no provider price was observed."""


TASK_STATUSES = ("open", "done", "cancelled")


class Task(DebtorOwned, Base):
    """A collector task: work for a person in a queue (a call, a visit, a review), created
    by a strategy's ``task`` step (``action_id``: at most one task per action) or, later,
    by other work queues."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("action_id"),
        Index("ix_tasks_tenant_queue", "tenant_id", "status", "queue", "due_at"),
        Index("ix_tasks_tenant_debtor", "tenant_id", "debtor_id"),
        CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status_known"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    action_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("actions.id",
                                                                    ondelete="SET NULL"))
    strategy_id: Mapped[int | None] = mapped_column(BigId)
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")
    note: Mapped[str | None] = mapped_column(SealedString("tasks.note"))
    """Why the task ends (given on complete or cancel)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
