"""API shapes of strategies, versions, steps, enrollments and actions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct

from cartera.types import Code, Id, ShortName, Text64, Text500

Anchor = Literal["oldest_unpaid_due_date", "obligation_due_date", "segment_entry",
                 "stage_entry", "previous_step", "promise_date", "next_installment_date"]
"""What a step's offset counts from: the debtor's oldest unpaid due date (any currency),
the due date of their open obligation of the step's ``obligation_product`` (the earliest
when several), the day they were enrolled (they enter the segment), the day their stage
last changed, the day the previous step was planned for (the enrollment day for the first
step), the date of their pending promise (the earliest), or the due date of the next
unpaid installment of their active plan. A step whose anchor has no date waits."""
DATE_ANCHORS = ("oldest_unpaid_due_date", "obligation_due_date", "promise_date",
                "next_installment_date")
"""Anchors that are dates the debtor owes by: a negative offset is a reminder before."""
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
    fallback_after_hours: Annotated[int, msgspec.Meta(ge=1, le=168)] | None = None
    """No delivery this many hours after the message was queued: the next channel is
    tried (a failure tries it at once). Not on the last channel."""


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


PaymentLinkAmount = Literal["balance", "offer", "installment"]


class PaymentLinkStepIn(Struct, forbid_unknown_fields=True):
    """A message step's payment link, got or made at dispatch through the tenant's payment
    integration and rendered as ``{{ links.payment }}``: ``balance`` (what the debtor owes in
    the tenant's currency, else the currency they owe most in), ``offer`` (their open or
    accepted offer) or ``installment`` (the next unpaid installment of their active plan).
    The debtor's open link for that purpose is reused. A message whose link cannot be made
    (nothing to pay, no offer or plan, the provider refuses) is not sent without it: the
    interaction fails ``payment_link_unavailable``."""

    amount: PaymentLinkAmount = "balance"
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 90)] = 72


class StepIn(Struct, forbid_unknown_fields=True):
    key: Code
    """Stable across versions: the in-flight policy ``same_key`` moves debtors by it."""
    kind: StepKind
    anchor: Anchor = "previous_step"
    offset_days: OffsetDays = 0
    """Days after the anchor (negative only from a date the debtor owes by, see
    :data:`DATE_ANCHORS`: a reminder before it)."""
    obligation_product: Code | None = None
    """``obligation_due_date``: required, the product of the obligation whose due date
    anchors the step."""
    window: WindowIn = msgspec.field(default_factory=WindowIn)
    channels: list[ChannelIn] = msgspec.field(default_factory=list)
    """``message``: at least one, tried in order (no usable contact point, gate denial)."""
    task: TaskIn | None = None
    """``task``: required."""
    stage_code: Code | None = None
    """``stage_change``: the stage to move the debtor to."""
    event: Text64 | None = None
    """``webhook``: the event type sent to the ISV (e.g. ``call.requested``)."""
    payment_link: PaymentLinkStepIn | None = None
    """``message``: a payment link made (or reused) at dispatch for ``links.payment``; the
    tenant needs an enabled payment integration when the version is activated."""


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
    obligation_product: str | None = None
    payment_link: PaymentLinkStepIn | None = None


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
    attempt: int = 0
    """0; for an action planned because the one before failed or was not delivered in
    time, the index of its first channel in the step's fallback."""
    fallback_of: int | None = None
    """The action this one falls back from."""


class PriceIn(Struct, forbid_unknown_fields=True):
    """A price at the provider's precision (at most 6 decimals), as a decimal string."""

    amount: Annotated[str, msgspec.Meta(max_length=32, examples=["0.0333"])]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", examples=["EUR"])]


class PlannerSettingsIn(Struct, forbid_unknown_fields=True):
    """The whole settings (a field left out is cleared)."""

    plan_hour: Annotated[int, msgspec.Meta(ge=0, le=23)]
    """The local hour (tenant's time zone) from which the daily planning job runs."""
    min_gap_hours: Annotated[int, msgspec.Meta(ge=1, le=168)] | None = None
    """Contact policy: at least this many hours between two contacts of a debtor (beyond
    the one contact a day); None: no gap."""
    weekly_cap: Annotated[int, msgspec.Meta(ge=1, le=50)] | None = None
    """Contact policy: at most this many contacts of a debtor in any 7 days; None: no cap.
    Contacts made count as the contact gate counts them (sent or attempted)."""
    channel_prices: dict[ContactChannel, PriceIn] | None = None
    """Price hints per channel for simulation, used where no provider price was observed
    in the last 90 days."""


class PlannerSettingsOut(Struct):
    plan_hour: int
    last_planned_on: date | None
    min_gap_hours: int | None = None
    weekly_cap: int | None = None
    channel_prices: dict[str, PriceIn] | None = None


class PolicyHold(Struct):
    """The tenant's contact policy (``PUT /v1/strategies/settings``: minimum gap between
    contacts, weekly cap) holds a next contact back from its instant (``planned_at``): the
    planner and dispatch defer it to ``earliest_at`` (or deny it when no instant is found)."""

    rule: Literal["min_contact_gap", "weekly_contact_cap"]
    """The rule that holds the contact at its instant."""
    rules: list[Literal["min_contact_gap", "weekly_contact_cap"]]
    """Every rule that held it on the way to ``earliest_at`` (the first is ``rule``)."""
    message: str
    min_gap_hours: int | None
    weekly_cap: int | None
    last_contact_at: datetime | None
    """The debtor's last contact (made, or another one planned) before ``planned_at``."""
    contacts_this_week: int
    """Their contacts (made or planned) in the 7 days before ``planned_at``."""
    earliest_at: datetime | None
    """The first instant inside the step's window the policy allows; None: none within
    the tries the planner makes, the contact would be denied."""


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
    held_by_policy: PolicyHold | None = None
    """Set when the contact policy holds this contact back (None: it allows it, or the
    step is not a contact, or another contact wins the day)."""


class NextActionOut(Struct):
    debtor_id: int
    as_of: datetime
    actions: list[NextAction]


class SimulateIn(Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 30


CHANNELS: tuple[str, ...] = ("sms", "whatsapp", "email", "voice", "letter", "visit")


class PriceOut(Struct):
    amount: str
    """A decimal string at the provider's precision (up to 6 decimals)."""
    currency: str


class UnitPrice(Struct):
    """What one contact on a channel is projected to cost, and where that comes from."""

    amount: str
    currency: str
    source: Literal["observed", "setting"]
    """``observed``: the mean of what the providers charged the tenant on that channel in
    the last 90 days (``observed`` interactions); ``setting``: the tenant's price hint
    (``PUT /v1/strategies/settings``)."""
    observed: int | None = None


class SimulatedDay(Struct):
    day: date
    actions_per_channel: dict[str, int]
    """Contacts that would fire that day per channel (other kinds under their kind)."""
    statuses: dict[str, int]
    reasons: dict[str, int]
    """``deferred:<code>`` / ``denied:<code>``: how many actions each reason held back;
    ``superseded:one_contact_a_day``: contacts that lost the debtor's day to a
    higher-priority one."""
    per_strategy: dict[str, int] = msgspec.field(default_factory=dict)
    """Actions that would fire that day per strategy code."""
    cost_per_channel: dict[str, PriceOut] = msgspec.field(default_factory=dict)
    """The contacts that would fire times the channel's unit price."""
    unpriced: list[str] = msgspec.field(default_factory=list)
    """Channels with contacts that day and no unit price."""


class SimulationOut(Struct):
    strategy_id: int | None
    start: date
    days: list[SimulatedDay]
    prices: dict[str, UnitPrice] = msgspec.field(default_factory=dict)
    """The unit price used per channel, with its source."""
    total_cost: dict[str, PriceOut] = msgspec.field(default_factory=dict)
    unpriced: list[str] = msgspec.field(default_factory=list)


TaskStatus = Literal["open", "done", "cancelled"]


class TaskOut(Struct):
    """A collector task: work for a person in a queue, due by ``due_at``."""

    id: int
    debtor_id: int
    queue: str
    priority: int
    """0 to 100; higher comes first in a work queue."""
    due_at: datetime
    status: TaskStatus
    action_id: int | None
    """The strategy action that created it."""
    strategy_id: int | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TaskClose(Struct, forbid_unknown_fields=True):
    note: Text500 | None = None
    """What was done (complete) or why not (cancel)."""


def _typed_rules() -> None:
    from cartera.api.openapi import register_schema
    from cartera.segmentation.schemas import RULE_SCHEMAS

    register_schema("SegmentRule", RULE_SCHEMAS["SegmentRule"],
                    fields=((VersionIn, "entry_rule"), (VersionIn, "stop_rule"),
                            (VersionOut, "entry_rule"), (VersionOut, "stop_rule")))


_typed_rules()
