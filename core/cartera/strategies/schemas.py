"""API shapes of strategies, versions, steps, enrollments and actions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct

from cartera.types import Code, Id, ShortName, Text64, Text500

Anchor = Literal["oldest_unpaid_due_date", "segment_entry", "stage_entry", "previous_step"]
"""What a step's offset counts from: the debtor's oldest unpaid due date (any currency),
the day they were enrolled (they enter the segment), the day their stage last changed, or
the day the previous step was planned for (the enrollment day for the first step)."""
StepKind = Literal["message", "task", "stage_change", "webhook", "wait"]
ContactChannel = Literal["sms", "whatsapp", "email", "voice", "letter", "visit"]
InFlight = Literal["finish", "same_key", "restart"]
VersionStatus = Literal["draft", "active", "retired"]
EnrollmentStatus = Literal["active", "paused", "completed", "stopped", "exited"]
ActionStatus = Literal["planned", "superseded", "deferred", "denied", "dispatched", "done",
                       "cancelled"]
Hour = Annotated[int, msgspec.Meta(ge=0, le=24)]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7, description="ISO weekday: 1 Monday … 7 "
                                                               "Sunday.")]
OffsetDays = Annotated[int, msgspec.Meta(ge=-365, le=3650)]
MAX_STEPS = 50


class ChannelIn(Struct, forbid_unknown_fields=True):
    """One channel of a message step's fallback chain, with its template (of that
    channel) and optionally the integration to send through (else the tenant's first
    enabled integration of that channel)."""

    channel: ContactChannel
    template_id: Id
    integration_id: Id | None = None


class WindowIn(Struct, forbid_unknown_fields=True):
    """When the step may happen, in the debtor's local time: from ``start_hour`` up to
    ``end_hour`` (exclusive) on ``weekdays``."""

    start_hour: Hour = 9
    end_hour: Hour = 19
    weekdays: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6])


class TaskIn(Struct, forbid_unknown_fields=True):
    """A collector task: the queue it lands in, its priority and how long after the
    planned instant it is due."""

    queue: Code
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    due_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 30)] = 24


class StepIn(Struct, forbid_unknown_fields=True):
    key: Code
    """Stable across versions: the in-flight policy ``same_key`` moves debtors by it."""
    kind: StepKind
    anchor: Anchor = "previous_step"
    offset_days: OffsetDays = 0
    """Days after the anchor (negative only from ``oldest_unpaid_due_date``: a reminder
    before the due date)."""
    window: WindowIn = msgspec.field(default_factory=WindowIn)
    channels: list[ChannelIn] = msgspec.field(default_factory=list)
    """``message``: at least one, tried in order (no usable contact point, gate denial)."""
    task: TaskIn | None = None
    """``task``: required."""
    stage_code: Code | None = None
    """``stage_change``: the stage to move the debtor to."""
    event: Text64 | None = None
    """``webhook``: the event type sent to the ISV (e.g. ``call.requested``)."""


class VersionIn(Struct, forbid_unknown_fields=True):
    segment_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=100)]
    """The segments whose debtors are enrolled."""
    steps: Annotated[list[StepIn], msgspec.Meta(min_length=1, max_length=MAX_STEPS)]
    stage_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list)
    """Optionally, only debtors in one of these stages (empty: any stage)."""
    entry_rule: dict[str, Any] | None = None
    """A segment rule (same language) a debtor must match to be enrolled."""
    stop_rule: dict[str, Any] | None = None
    """A segment rule that stops the enrollment once it matches (e.g. paid)."""


class StrategyCreate(Struct, forbid_unknown_fields=True):
    code: Code
    name: ShortName
    version: VersionIn
    """Version 1, created as a draft."""
    priority: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """Lower runs first when two strategies' steps compete for a debtor's day."""


class StrategyUpdate(Struct, forbid_unknown_fields=True):
    name: ShortName | None = None
    priority: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None


class Activate(Struct, forbid_unknown_fields=True):
    in_flight: InFlight = "finish"
    """Enrollments on the previous active version: ``finish`` there, move to the step with
    the same key (``same_key``; the first step when the key is gone), or ``restart``."""


class StepOut(Struct):
    key: str
    kind: str
    anchor: str
    offset_days: int
    window: WindowIn
    channels: list[ChannelIn]
    task: TaskIn | None
    stage_code: str | None
    event: str | None


class VersionOut(Struct):
    id: int
    number: int
    status: VersionStatus
    segment_ids: list[int]
    stage_ids: list[int]
    entry_rule: dict[str, Any] | None
    stop_rule: dict[str, Any] | None
    steps: list[StepOut]
    in_flight: str | None
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class StrategyOut(Struct):
    id: int
    code: str
    name: str
    priority: int
    active_version: int | None
    versions: list[VersionOut]
    created_at: datetime
    updated_at: datetime


class EnrollmentOut(Struct):
    id: int
    debtor_id: int
    strategy_id: int
    version_id: int
    step_index: int
    step_key: str | None
    """The next step to plan (None once every step was planned)."""
    status: EnrollmentStatus
    reason: str | None
    entered_on: date
    last_step_on: date | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class EnrollmentChange(Struct, forbid_unknown_fields=True):
    reason: Text500 | None = None


class ActionOut(Struct):
    id: int
    debtor_id: int
    enrollment_id: int
    strategy_id: int
    version_id: int
    step_index: int
    step_key: str
    kind: str
    channel: str | None
    anchor_on: date | None
    due_on: date
    """The debtor's local day the action is for."""
    planned_at: datetime
    status: ActionStatus
    superseded_by: int | None
    verdict: dict[str, Any] | None
    outcome: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class PlannerSettingsIn(Struct, forbid_unknown_fields=True):
    plan_hour: Annotated[int, msgspec.Meta(ge=0, le=23)]
    """The local hour (tenant's time zone) from which the daily planning job runs."""


class PlannerSettingsOut(Struct):
    plan_hour: int
    last_planned_on: date | None


class NextAction(Struct):
    """What the planner would plan for one enrollment of the debtor now."""

    enrollment_id: int
    strategy_id: int
    strategy_code: str
    version: int
    step_index: int
    step_key: str
    kind: str
    anchor: str
    anchor_on: date | None
    """None when the anchor has no date yet (e.g. nothing unpaid): the step waits."""
    offset_days: int
    step_date: date | None
    window: WindowIn
    due_on: date | None
    planned_at: datetime | None
    channel: str | None
    verdict: dict[str, Any] | None
    superseded_by: str | None
    """``action:<id>`` or ``enrollment:<id>`` of the contact that wins the debtor's day."""
    already_planned: int | None
    """The id of the action already planned for this step and day, if any."""


class NextActionOut(Struct):
    debtor_id: int
    as_of: datetime
    actions: list[NextAction]


class SimulateIn(Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 30


class SimulatedDay(Struct):
    day: date
    actions_per_channel: dict[str, int]
    """Contacts that would fire that day per channel (other kinds under their kind)."""
    statuses: dict[str, int]
    reasons: dict[str, int]
    """``deferred:<code>`` / ``denied:<code>``: how many actions each reason held back."""


class SimulationOut(Struct):
    strategy_id: int | None
    start: date
    days: list[SimulatedDay]


def _typed_rules() -> None:
    from cartera.api.openapi import register_schema
    from cartera.segmentation.schemas import RULE_SCHEMAS

    register_schema("SegmentRule", RULE_SCHEMAS["SegmentRule"],
                    fields=((VersionIn, "entry_rule"), (VersionIn, "stop_rule"),
                            (VersionOut, "entry_rule"), (VersionOut, "stop_rule")))


_typed_rules()
