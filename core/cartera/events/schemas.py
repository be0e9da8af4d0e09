"""API shapes of events, webhook endpoints and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cartera.events.models import DeliveryStatus
from cartera.types import Text500

EventTypeFilter = Annotated[str, msgspec.Meta(
    min_length=1, max_length=64, pattern=r"^(\*|[a-z_]+\.(\*|[a-z_]+))$",
    description="An event type (``payment.created``), a family (``payment.*``) or ``*``.",
    examples=["payment.*"])]
EndpointUrl = Annotated[str, msgspec.Meta(
    min_length=1, max_length=2048, description="Where events are POSTed (https).",
    examples=["https://isv.example.com/cartera/events"])]


class EventResource(Struct):
    type: str
    id: str


class EventOut(Struct):
    """One state change. It is also the body of a webhook delivery."""

    id: str
    type: str
    created_at: datetime
    resource: EventResource
    debtor_id: int | None
    data: dict[str, Any]


class EventPage(Struct):
    """One page of events; pass ``next_cursor`` as ``starting_after`` for the next."""

    data: list[EventOut]
    has_more: bool
    next_cursor: str | None = None


class EndpointCreate(Struct, forbid_unknown_fields=True):
    url: EndpointUrl
    event_types: Annotated[list[EventTypeFilter], msgspec.Meta(min_length=1, max_length=50)]
    description: Text500 | None = None


class EndpointUpdate(Struct, forbid_unknown_fields=True):
    url: EndpointUrl | UnsetType = UNSET
    event_types: Annotated[list[EventTypeFilter],
                           msgspec.Meta(min_length=1, max_length=50)] | UnsetType = UNSET
    description: Text500 | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET
    """Enabling again an endpoint disabled after failing clears its failure record."""


class EndpointOut(Struct):
    id: int
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Struct):
    """Returned once, on create and on rotation: the secret is never shown again."""

    endpoint: EndpointOut
    secret: str


class RotateSecret(Struct, forbid_unknown_fields=True):
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 86_400)] = 86_400
    """How long deliveries are signed with the old secret too (Standard Webhooks allows
    several signatures), so receivers can switch without losing events."""


class DeliveryOut(Struct):
    id: int
    event_id: str
    endpoint_id: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None


class RedeliverIn(Struct, forbid_unknown_fields=True):
    endpoint_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    """Only to this endpoint (it must be enabled); by default to every enabled endpoint
    whose filters match the event."""


class RedeliverOut(Struct):
    data: list[DeliveryOut]


class AttemptOut(Struct):
    id: int
    delivery_id: int
    event_id: str
    event_type: str
    attempt: int
    at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None
    """At most 200 characters of the response body; the rest is never stored."""
