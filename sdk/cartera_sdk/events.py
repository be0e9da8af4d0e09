"""Domain events delivered to observer hooks (``on_*``) after the core commits them.

Events are immutable facts; observers must not assume exactly-once delivery (use
``event_id`` to de-duplicate) and must not block: slow work belongs in the plugin's own queue.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

from .money import Money

__all__ = [
    "DebtorStageChanged",
    "DomainEvent",
    "InteractionRecorded",
    "PaymentReceived",
    "PromiseBroken",
    "SegmentChanged",
]


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Common fields: unique ``event_id``, owning ``tenant_id``, aware ``occurred_at``."""

    event_id: str
    tenant_id: str
    occurred_at: datetime

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


class PaymentReceived(DomainEvent, frozen=True, kw_only=True, tag="payment.received"):
    """A payment was recorded (any source: provider webhook, ERP, import, manual)."""

    payment_id: str
    debtor_id: str
    amount: Money
    source: str
    integration_id: str | None = None
    reference: str | None = None


class PromiseBroken(DomainEvent, frozen=True, kw_only=True, tag="promise.broken"):
    """A promise to pay reached its due date without being kept."""

    promise_id: str
    debtor_id: str
    promised_amount: Money
    paid_amount: Money
    due_date: date


class SegmentChanged(DomainEvent, frozen=True, kw_only=True, tag="segment.changed"):
    """A debtor moved between segments (``None`` = no segment)."""

    debtor_id: str
    previous_segment_id: str | None
    segment_id: str | None


class InteractionRecorded(DomainEvent, frozen=True, kw_only=True, tag="interaction.recorded"):
    """A contact attempt or reply was logged."""

    interaction_id: str
    debtor_id: str
    channel: str
    direction: Literal["outbound", "inbound"]
    outcome: str
    integration_id: str | None = None


class DebtorStageChanged(DomainEvent, frozen=True, kw_only=True, tag="debtor.stage_changed"):
    """A debtor's collection stage changed (e.g. ``early`` -> ``late`` -> ``legal``)."""

    debtor_id: str
    previous_stage: str | None
    stage: str
