"""Compliance pack contract: may we contact this person, on this channel, at this instant?

One pack per country (ISO 3166-1 alpha-2). The host asks :meth:`CompliancePack.judge`
before every planned contact and obeys the verdict. Every verdict carries at least one
machine-readable :class:`Reason` whose ``code`` is listed in :meth:`CompliancePack.rules`,
so a refusal can be explained and audited. Packs are pure and synchronous: no I/O, the
same input gives the same verdict (the host calls them for whole portfolios).

Local times are computed in the debtor's IANA time zone; legal hour windows are half-open
``[start, end)`` (a contact at the closing minute is outside).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from .integration import NoConfig
from .money import Money

__all__ = [
    "Allow",
    "BaseCompliancePack",
    "ChargeFinding",
    "ChargeKind",
    "ChargeQuery",
    "CompliancePack",
    "ContactChannel",
    "ContactContent",
    "ContactOrigin",
    "ContactPointUse",
    "ContactVerdict",
    "ContentKind",
    "Creditor",
    "CreditorKind",
    "Defer",
    "Deny",
    "Holiday",
    "InvalidContact",
    "PlannedContact",
    "Prescription",
    "PriorContact",
    "Reason",
    "RecipientRole",
    "RuleDescription",
    "Verification",
]

#: ``voice`` is any phone call (human or automated); ``visit`` an in-person visit.
ContactChannel = Literal["whatsapp", "sms", "email", "voice", "letter", "visit"]
#: Who would be contacted. Laws treat the debtor, co-obligors and unrelated third parties
#: differently (MX forbids references; PE allows the guarantor; CO never references).
RecipientRole = Literal[
    "debtor", "co_debtor", "guarantor", "reference", "family", "employer", "other_third_party"
]
#: What a message is: a friendly ``reminder``, a ``notice`` (demand for payment) or a
#: ``formal_letter`` (a pre-legal letter). Laws treat the last two more strictly.
ContentKind = Literal["reminder", "notice", "formal_letter"]
#: Where a contact point came from: given by the debtor, or found (skip tracing, a bureau).
ContactOrigin = Literal["debtor_provided", "found"]
#: What a contact point is for: the debtor's ``personal`` one, or a ``work`` phone, e-mail
#: or address (CABA Ley 6171 forbids collection through work contact points).
ContactPointUse = Literal["personal", "work"]
#: How sure the legal reading is (compliance.md legend: ✅ / ◑ / ❓).
Verification = Literal["verified", "secondary", "unverified"]


class InvalidContact(ValueError):
    """A planned contact a pack cannot judge (naive instant, unknown zone, a zone outside
    the country, a subdivision that does not exist). ``field`` names the culprit.

    .. versionadded:: 0.1.1
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownTimeZone(InvalidContact, ZoneInfoNotFoundError):
    """``debtor_timezone`` is not an IANA zone (still a ``ZoneInfoNotFoundError``, what
    0.1.0 raised)."""


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidContact(name, "must be timezone-aware")


class ContactContent(msgspec.Struct, frozen=True, kw_only=True):
    """The rendered content of a planned contact (an SMS text, an e-mail, a call script).

    .. versionadded:: 0.1.1
    """

    text: str
    kind: ContentKind = "reminder"
    subject: str | None = None


class Creditor(msgspec.Struct, frozen=True, kw_only=True):
    """Who is owed, and who collects. ``agency_name`` is set when a collection agency
    (despacho, gestor) contacts on the creditor's behalf; ``tax_id`` is the creditor's
    RUC/RFC/NIT/RUT/CUIT/CNPJ. ``agency_registered`` says whether the agency is in the
    regulator's registry of collection agencies (MX: REDECO), ``None`` unknown.

    .. versionadded:: 0.1.1
    .. versionchanged:: 1.1.0 ``agency_registered`` added.
    """

    name: str
    tax_id: str | None = None
    address: str | None = None
    agency_name: str | None = None
    agency_registered: bool | None = None


class PriorContact(msgspec.Struct, frozen=True, kw_only=True):
    """A contact already made (sent or attempted: never a planned or refused one).
    ``direct`` means the person was actually reached (CO's "contacto directo": an answered
    call, a reply); ``at`` is an aware instant. ``outcome`` is the host's outcome
    (``delivered``, ``read``, ``answered``, ``no_answer``, ``failed``...), ``None`` unknown.

    .. versionchanged:: 0.1.1 ``outcome`` added.
    """

    channel: ContactChannel
    at: datetime
    direct: bool = False
    recipient_role: RecipientRole = "debtor"
    outcome: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.at, "at")


class PlannedContact(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a pack needs to judge one planned contact.

    * ``planned_at``: aware instant (UTC by convention) of the contact.
    * ``debtor_country``/``debtor_subdivision``: ISO 3166-1 alpha-2 / ISO 3166-2
      (``BR-SP``, ``AR-C``) of the debtor's address; state laws depend on the subdivision.
    * ``debtor_timezone``: IANA zone used for local hours.
    * ``recent_contacts``: contacts of the last 7 days at least (frequency caps).
    * ``authorized_channels``: channels the debtor authorised (CO art. 2), ``None`` unknown.
    * ``consumer``: natural person / consumer credit (most rules protect consumers only).
    * ``in_litigation``: a collection suit or insolvency is under way (CL: stop contact).
    * ``requested_by_debtor``: the debtor asked to be contacted now (callback request).
    * ``timezone_known``: ``False`` when ``debtor_timezone`` is a guess; packs then apply
      the intersection of the windows of every zone of the country.
    * ``contact_origin``: where the contact point came from (``None`` unknown).
    * ``content``: the rendered content (``None`` when there is none to check).
    * ``creditor``: who is owed and who collects (disclosure and identification checks).
    * ``recipient_age``: the recipient's age in whole years at ``planned_at`` (``None``
      unknown; MX forbids collection with minors and with older adults who are not the
      debtor).
    * ``contact_point_use``: whether the contact point is the debtor's ``personal`` one or
      a ``work`` one (``None`` unknown; CABA forbids work phones, e-mail and workplaces).

    .. versionchanged:: 0.1.1 ``timezone_known``, ``contact_origin``, ``content``,
       ``creditor`` added.
    .. versionchanged:: 1.1.0 ``recipient_age``, ``contact_point_use`` added.
    """

    channel: ContactChannel
    planned_at: datetime
    debtor_country: str
    debtor_timezone: str
    debtor_subdivision: str | None = None
    recipient_role: RecipientRole = "debtor"
    consumer: bool = True
    stage: str | None = None
    days_past_due: int | None = None
    is_first_contact: bool = False
    recent_contacts: list[PriorContact] = msgspec.field(default_factory=list)
    authorized_channels: list[ContactChannel] | None = None
    in_litigation: bool = False
    requested_by_debtor: bool = False
    timezone_known: bool = True
    contact_origin: ContactOrigin | None = None
    content: ContactContent | None = None
    creditor: Creditor | None = None
    recipient_age: int | None = None
    contact_point_use: ContactPointUse | None = None

    def __post_init__(self) -> None:
        _require_aware(self.planned_at, "planned_at")
        if self.recipient_age is not None and not 0 <= self.recipient_age <= 150:
            raise InvalidContact("recipient_age", f"{self.recipient_age} is not an age")
        try:
            ZoneInfo(self.debtor_timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise UnknownTimeZone(
                "debtor_timezone", f"No time zone found: {self.debtor_timezone!r} is not an IANA "
                "time zone"
            ) from None

    @property
    def local_planned_at(self) -> datetime:
        """``planned_at`` in the debtor's time zone."""
        return self.planned_at.astimezone(ZoneInfo(self.debtor_timezone))

    def contacts_within(
        self,
        window: timedelta,
        channels: frozenset[str] | None = None,
        *,
        direct_only: bool = False,
    ) -> list[PriorContact]:
        """Prior contacts in ``[planned_at - window, planned_at)``, optionally filtered."""
        start = self.planned_at - window
        return [
            c
            for c in self.recent_contacts
            if start <= c.at < self.planned_at
            and (channels is None or c.channel in channels)
            and (c.direct or not direct_only)
        ]

    def count_last_24h(self, channel: str | None = None) -> int:
        """Contacts in the 24 hours before ``planned_at`` (on ``channel`` if given)."""
        chans = None if channel is None else frozenset({channel})
        return len(self.contacts_within(timedelta(hours=24), chans))

    def count_last_7d(self, channel: str | None = None) -> int:
        """Contacts in the 7 days before ``planned_at`` (on ``channel`` if given)."""
        chans = None if channel is None else frozenset({channel})
        return len(self.contacts_within(timedelta(days=7), chans))


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """Why a verdict was given. ``code`` is stable snake_case (``outside_hours``);
    ``rule_ref`` cites the legal source (``Ley 29571 art. 62.b``)."""

    code: str
    message: str
    rule_ref: str | None = None

    def __post_init__(self) -> None:
        if not self.code:
            raise ValueError("a Reason needs a code")


def _require_reasons(reasons: list[Reason]) -> None:
    if not reasons:
        raise ValueError("a verdict must carry at least one Reason")


class _Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """``pack_version`` and ``calendar_version`` (e.g. ``holidays 0.109``) say which rules
    and which holiday calendar judged, for the audit trail.

    .. versionadded:: 0.1.1 ``pack_version``, ``calendar_version``.
    """

    pack_version: str | None = None
    calendar_version: str | None = None


class Allow(_Verdict, frozen=True, kw_only=True, tag="allow", tag_field="decision"):
    """Contact may happen at ``planned_at``."""

    reasons: list[Reason]

    def __post_init__(self) -> None:
        _require_reasons(self.reasons)


class Defer(_Verdict, frozen=True, kw_only=True, tag="defer", tag_field="decision"):
    """Not now; the earliest lawful instant is ``until`` (aware, after ``planned_at``)."""

    until: datetime
    reasons: list[Reason]

    def __post_init__(self) -> None:
        _require_reasons(self.reasons)
        _require_aware(self.until, "until")


class Deny(_Verdict, frozen=True, kw_only=True, tag="deny", tag_field="decision"):
    """This contact must not happen (e.g. third party, unauthorised channel)."""

    reasons: list[Reason]

    def __post_init__(self) -> None:
        _require_reasons(self.reasons)


ContactVerdict = Allow | Defer | Deny


class Holiday(msgspec.Struct, frozen=True, kw_only=True):
    """A public holiday. ``subdivision`` set for regional holidays (ISO 3166-2)."""

    date: date
    name: str
    subdivision: str | None = None


class RuleDescription(msgspec.Struct, frozen=True, kw_only=True):
    """One rule a pack applies; its ``code`` is used in :class:`Reason`."""

    code: str
    title: str
    description: str
    legal_ref: str | None = None
    verification: Verification = "verified"
    configurable: bool = False


ChargeKind = Literal["collection_fee", "late_penalty", "moratory_interest", "bureau_report"]
#: ``supervised_lender``: a bank or lender under the financial supervisor (SBS, SFC, CMF...).
CreditorKind = Literal["supervised_lender", "other"]


class ChargeQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What a creditor wants to add to a debt today, and what a pack needs to say.

    * ``overdue``: the overdue amount (CL collection-fee bands).
    * ``uf_value``: pesos per Unidad de Fomento today (CL bands are in UF).
    * ``notices``: dates a prior notice of a credit-bureau report was sent;
      ``written_notice``: they were written (BR requires it); ``small_debt``: CO's debts of
      at most 15 % of one monthly minimum wage (two notices on different days).

    .. versionadded:: 0.1.1
    """

    debtor_country: str
    today: date
    days_past_due: int
    overdue: Money | None = None
    creditor_kind: CreditorKind = "supervised_lender"
    uf_value: Decimal | None = None
    notices: list[date] = msgspec.field(default_factory=list)
    written_notice: bool = False
    small_debt: bool = False


class ChargeFinding(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a creditor may add ``kind`` today, up to ``max_amount`` when the law caps it,
    and from which date when not yet (``lawful_from``), with the reason and its article.

    .. versionadded:: 0.1.1
    """

    kind: ChargeKind
    allowed: bool
    reason: Reason
    max_amount: Money | None = None
    lawful_from: date | None = None


class Prescription(msgspec.Struct, frozen=True, kw_only=True):
    """When judicial collection of the debt becomes time-barred (prescription, statute of
    limitations), as information on the debtor. ``time_barred_from`` is the first day on
    which a collection suit is barred, ``None`` when the pack knows no period for the
    country (it never guesses a date); ``verification`` is how sure that reading is.

    .. versionadded:: 1.1.0
    """

    time_barred_from: date | None
    reason: Reason
    verification: Verification = "unverified"


@runtime_checkable
class CompliancePack(Protocol):
    """What ``register_compliance_packs`` registers (one per country).

    ``Config`` holds policy flags with lawful defaults (``Config()`` must be valid).
    """

    @property
    def name(self) -> str: ...

    @property
    def country(self) -> str: ...

    @property
    def Config(self) -> type[msgspec.Struct]: ...

    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict: ...

    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]: ...

    def rules(self) -> list[RuleDescription]: ...


class BaseCompliancePack(ABC):
    """Convenience base: set ``name``, ``country``, optionally ``Config``."""

    name: ClassVar[str]
    country: ClassVar[str]
    Config: ClassVar[type[msgspec.Struct]] = NoConfig

    @abstractmethod
    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict: ...

    @abstractmethod
    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]: ...

    @abstractmethod
    def rules(self) -> list[RuleDescription]: ...

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        """Fees, interest and bureau reports the creditor may add or make today, and why
        (``[]``: the pack knows no rule). Reason codes are listed in :meth:`rules`.
        ``config`` is the tenant's pack config (``None``: ``Config()``).

        .. versionadded:: 0.1.1
        .. versionchanged:: 1.1.0 optional ``config``.
        """
        return []

    def prescription(self, query: ChargeQuery) -> Prescription | None:
        """When judicial collection of the debt is time-barred (``None``: the pack says
        nothing). The debt is read as due since ``query.today - query.days_past_due``.
        The reason's code is listed in :meth:`rules`.

        .. versionadded:: 1.1.0
        """
        return None
