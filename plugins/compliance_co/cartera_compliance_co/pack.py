"""Colombia: Ley 2300 de 2023 ("Dejen de fregar"), upheld by Sentencia C-278/2024.

Readings (compliance.md §2.3):

* Art. 3 hours: Mon-Fri 07:00-19:00, Sat 08:00-15:00, no contact of any kind on Sundays
  and holidays (Ley Emiliani moved holidays, from ``holidays``), every channel.
* Art. 3 frequency: "una vez establecido un contacto directo ... no podrá ser contactado
  ... mediante varios canales dentro de una misma semana ni en más de una ocasión durante
  el mismo día". A direct contact is, by default, any answered call, reply or delivered
  message ("count every delivered attempt", the conservative reading of a disputed term);
  ``direct_contact="any_attempt"`` is stricter. The once-a-day cap applies from the first
  contact by default (``daily_cap_before_direct_contact``), stricter than the literal text.
  "Semana" is the ISO calendar week in the debtor's zone by default, rolling 7 days as an
  option. Only the history the host passes (7 days at least) can show a direct contact.
* Art. 2: only channels the consumer authorised; unknown authorisation is refused.
* Art. 4: references never; co-debtors and guarantors under the same rules.
* Art. 6: no collection visits (the microcredit/agro exception is not modelled).
* Art. 7: never ask why the consumer defaulted.
* Money: collection charges only for a real, documented collection effort, reasonable and
  previously informed (SFC Circular Externa 048/2008, secondary); the pack cannot see
  those facts, so no fee is reported lawful. Bureau reports: 20 calendar days after a prior
  communication (two for small debts), and at most 18 months after default (Ley 1266 art.
  12; Ley 2157/2021).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

from cartera_sdk import (
    ChargeFinding,
    ChargeQuery,
    PlannedContact,
    Prescription,
    Reason,
    RuleDescription,
)
from cartera_sdk.compliancekit import (
    OBLIGORS,
    AtMost,
    NotBefore,
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    calendar_cap,
    findings,
    is_direct,
    rolling_cap,
    rule,
)

HOURS = WeeklyHours.of({range(5): ("07:00", "19:00"), 5: ("08:00", "15:00")})
ART = "Ley 2300 de 2023 art. "
BUREAU_NOTICE_DAYS = 20
BUREAU_MAX_MONTHS = 18
SFC_048 = "SFC Circular Externa 048 de 2008"
ASKS_WHY = (
    re.compile(r"\bpor ?que no (ha|has|han|habia|habias) (pagado|cancelado|abonado)\b"),
    re.compile(r"\b(motivo|razon|causa)s? (de|del|de su|de tu) (no pago|impago|"
               r"incumplimiento|atraso|mora)\b"),
)


class CoConfig(PackConfig, frozen=True, kw_only=True):
    """``week``: calendar (ISO, Mon-Sun) or rolling 7 days; ``direct_contact``: what counts
    as a direct contact; ``contacts_per_day`` at most 1."""

    week: Literal["calendar", "rolling"] = "calendar"
    direct_contact: Literal["delivered", "any_attempt"] = "delivered"
    daily_cap_before_direct_contact: bool = True
    contacts_per_day: int = 1

    legal_limits = (AtMost("contacts_per_day", 1, ART + "3"),)


class ColombiaPack(RulePack):
    name = "compliance_co"
    country = "CO"
    version = "0.2.0"
    Config = CoConfig
    timezones = ("America/Bogota",)
    subdivisions = frozenset(f"CO-{s}" for s in (
        "AMA", "ANT", "ARA", "ATL", "BOL", "BOY", "CAL", "CAQ", "CAS", "CAU", "CES", "CHO",
        "COR", "CUN", "DC", "GUA", "GUV", "HUI", "LAG", "MAG", "MET", "NAR", "NSA", "PUT",
        "QUI", "RIS", "SAN", "SAP", "SUC", "TOL", "VAC", "VAU", "VID"))
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", "Ley 2300 de 2023 arts. 2-7",
             "No rule of Ley 2300 forbids this contact at this instant."),
        rule("outside_hours", "Outside the legal hours", ART + "3",
             "Mon-Fri 07:00-19:00 and Sat 08:00-15:00 only (half-open), every channel.",
             configurable=True),
        rule("closed_day", "Sunday", ART + "3",
             "No contact of any kind on Sundays.", configurable=True),
        rule("public_holiday", "Public holiday", ART + "3; Ley 51 de 1983",
             "No contact of any kind on holidays, including Ley Emiliani moved holidays "
             "(`holidays` calendar, version in each verdict). The 2026 Chiquinquirá day "
             "(Ley 2578 de 2026) is in the calendar but unverified.", configurable=True),
        rule("daily_contact_cap", "Already contacted today", ART + "3",
             "No more than one contact a day (local calendar day). Applied from the first "
             "contact by default; the text conditions it on a prior direct contact.",
             configurable=True),
        rule("weekly_channel_lock", "Another channel this week", ART + "3",
             "After a direct contact, no contact through several channels in the same week: "
             "only the channel already used this week, until the week ends. A direct "
             "contact is an answered call, a reply or a delivered message by default "
             "(disputed term: SFC Consejo Asesor reads it as two-way).",
             verification="unverified", configurable=True),
        rule("channel_not_authorised", "Channel not authorised", ART + "2",
             "Only channels the consumer authorised may be used; when authorisation is not "
             "known the contact is refused.", verification="secondary"),
        rule("third_party_forbidden", "References or third parties", ART + "4",
             "Never contact personal or other references; co-debtors, guarantors (avalistas) "
             "and joint debtors under the same rules. Family and employers are references."),
        rule("visit_forbidden", "Collection visit", ART + "6",
             "No collection visits to the home or workplace (the microcredit/agro exception "
             "is not modelled)."),
        rule("asks_reason_for_default", "Asks why the debtor did not pay", ART + "7",
             "Never ask the consumer why they defaulted (offering alternatives is fine)."),
        rule("court_document_lookalike", "Looks like a court document",
             ART + "3; Ley 1480 de 2011 art. 3",
             "Collection must be respectful and truthful: nothing that looks like a court "
             "document.", verification="secondary"),
        rule("threat", "Threat or exposure", ART + "3",
             "Collection without affecting personal or family privacy: no threats, no "
             "telling family, employer or neighbours.", verification="secondary"),
        rule("bureau_notice_required", "Prior notice before a bureau report",
             "Ley 1266 de 2008 art. 12; Ley 2157 de 2021",
             "A negative report only 20 calendar days after a prior communication; debts of "
             "at most 15 % of one SMLMV need two communications on different days, and the "
             "20 days run from the last.", verification="secondary"),
        rule("creditor_name_missing", "Creditor not named", "Ley 1480 de 2011 art. 23",
             "An agency's notice or formal letter must name the creditor (truthful "
             "information).", verification="unverified"),
        rule("bureau_report_too_late", "Too late for a bureau report", "Ley 2157 de 2021",
             "A negative report may be made at most 18 months after the default.",
             verification="secondary"),
        rule("collection_fee_conditions", "Collection fee not known lawful", SFC_048,
             "A collection charge needs a real, documented collection effort, must be "
             "reasonable and proportionate and match amounts informed to the debtor "
             "beforehand; never pre-legal fees on housing loans, no lawyer's fees for mere "
             "default. The pack cannot see those facts: no fee is reported lawful.",
             verification="secondary"),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.3",
             "The law file states no limitation period for judicial collection in Colombia: "
             "the pack gives no date after which collection is time-barred (never a "
             "guessed one). Counsel must supply the period.", verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = self.role_denial(contact, OBLIGORS)
        if contact.channel == "visit":
            out.append(self.reason("visit_forbidden"))
        authorised = contact.authorized_channels
        if authorised is None:
            out.append(self.reason("channel_not_authorised", "authorisation unknown"))
        elif contact.channel not in authorised:
            out.append(self.reason("channel_not_authorised", contact.channel))
        out += self.content_denials(contact)
        if contact.content is not None:
            found = findings(contact.content.text, ASKS_WHY)
            if found:
                out.append(self.reason("asks_reason_for_default", ", ".join(found)))
        return out

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        return [self.finding("collection_fee", False, "collection_fee_conditions"),
                self._bureau(query)]

    def _bureau(self, query: ChargeQuery) -> ChargeFinding:
        defaulted = query.today - timedelta(days=max(query.days_past_due, 0))
        if _add_months(defaulted, BUREAU_MAX_MONTHS) < query.today:
            return self.finding("bureau_report", False, "bureau_report_too_late",
                                f"in default since {defaulted.isoformat()}")
        needed = 2 if query.small_debt else 1
        days = sorted(set(query.notices))
        if len(days) < needed:
            detail = f"{needed} notice(s) on different days needed, {len(days)} sent"
            return self.finding("bureau_report", False, "bureau_notice_required", detail)
        start = days[-1] + timedelta(days=BUREAU_NOTICE_DAYS)
        return self.finding("bureau_report", query.today >= start, "bureau_notice_required",
                            lawful_from=start)

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        rules: list[TimeRule] = [self.hours_rule(contact, config, HOURS)]
        zone = self.primary_zone(contact)
        direct = any(is_direct(c, config.direct_contact) for c in contact.recent_contacts
                     if c.at < contact.planned_at)
        if direct or config.daily_cap_before_direct_contact:
            cap = calendar_cap(contact, zone, config.contacts_per_day, "day",
                               self.reason("daily_contact_cap"))
            if cap:
                rules.append(cap)
        if direct:
            lock = self._channel_lock(contact, config)
            if lock:
                rules.append(lock)
        return rules

    def _channel_lock(self, contact: PlannedContact, config: Any) -> NotBefore | None:
        reason = self.reason("weekly_channel_lock")

        def other(c: Any) -> bool:
            return bool(c.channel != contact.channel)

        if config.week == "rolling":
            return rolling_cap(contact, 1, timedelta(days=7), reason, keep=other)
        return calendar_cap(contact, self.primary_zone(contact), 1, "week", reason, keep=other)


def _add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months (the last day of a shorter month)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))
