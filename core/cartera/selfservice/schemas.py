"""API shapes of self-service: the links clients issue and what the debtor sees and does."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Struct

from cartera.offers.schemas import OfferOut
from cartera.types import Amount, Channel, Currency, Id


class SelfServiceLinkCreate(Struct, forbid_unknown_fields=True):
    debtor_id: Id
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 14)] = 72


class SelfServiceLinkOut(Struct):
    id: int
    debtor_id: int
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    created_by: str
    created_at: datetime
    token: str | None = None
    """Shown once, when the link is made (only its hash is stored)."""
    url: str | None = None
    """The debtor-facing address carrying the token (``links.self_service`` in templates);
    shown once, like ``token``."""


class ObligationView(Struct):
    id: int
    external_ref: str
    kind: str
    currency: str
    due_date: date
    outstanding_amount: str


class BalanceView(Struct):
    currency: str
    outstanding_amount: str
    overdue_amount: str
    days_past_due: int


class PromiseView(Struct):
    id: int
    currency: str
    amount: str
    promised_date: date
    status: str


class SelfServiceOut(Struct):
    debtor_name: str
    expires_at: datetime
    balances: list[BalanceView]
    obligations: list[ObligationView]
    offers: list[OfferOut]
    """Open offers within policy (those waiting for approval are not shown)."""
    promises: list[PromiseView]
    max_promise_date: date


class PaymentLinkAsk(Struct, forbid_unknown_fields=True):
    """The balance in ``currency``, an open offer (``offer_id``) or an installment of the
    debtor's plan (``installment_id``)."""

    currency: Currency
    offer_id: Id | None = None
    installment_id: Id | None = None


class PromiseAsk(Struct, forbid_unknown_fields=True):
    currency: Currency
    amount: Amount
    promised_date: date


class OptOutAsk(Struct, forbid_unknown_fields=True):
    channel: Channel


class OptOutOut(Struct):
    channel: str
    contact_points: int


class ActivityOut(Struct):
    at: datetime
    action: str
    resource_type: str
    resource_id: str


Kind = Literal["balance", "offer", "installment"]
