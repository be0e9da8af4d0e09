"""Brazil: Código de Defesa do Consumidor (Lei 8.078/1990) arts. 42, 42-A, 71; state laws.

Readings (compliance.md §2.6):

* No federal hour rule, but art. 71 makes collection that "interfira com seu trabalho,
  descanso ou lazer" a crime. State laws set windows: SP (Lei 15.426/2014) and AL (Lei
  7.782/2016, calls and SMS) Mon-Fri 08:00-20:00, Sat 08:00-14:00, never Sundays or
  holidays; RJ, ES and AM (unverified) weekdays only, to 19:00 (RJ from 09:00). Elsewhere
  the pack applies the SP window by default, as the conservative reading of art. 71
  (``hours_nationwide``). By default the windows cover every channel but letters
  (``hours_apply_to``: at least calls; AL's SMS always).
* Art. 42-A: every collection document (a written message or letter) carries the
  supplier's name, address and CPF/CNPJ; an unknown creditor cannot be verified and is
  refused.
* Arts. 42 and 71: no ridicule, constraint, threats or false statements (a fake court
  document is one); exposing the debtor to third parties is vexatious.
* Bureau reports: prior written notice (art. 43 §2); no negative information older than
  five years (art. 43 §1, secondary).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, timedelta
from typing import Any, ClassVar

from cartera_sdk import (
    ChargeFinding,
    ChargeQuery,
    ContactChannel,
    PlannedContact,
    Prescription,
    Reason,
    RuleDescription,
)
from cartera_sdk.compliancekit import (
    COURT_DOCUMENT_PT,
    MESSAGE_CHANNELS,
    OBLIGORS,
    THREATS_PT,
    Floor,
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    mentions,
    normalise,
    rule,
)

SP_HOURS = WeeklyHours.of({range(5): ("08:00", "20:00"), 5: ("08:00", "14:00")})
STATE_HOURS = {
    "BR-SP": SP_HOURS,
    "BR-AL": SP_HOURS,
    "BR-RJ": WeeklyHours.of({range(5): ("09:00", "19:00")}),
    "BR-ES": WeeklyHours.of({range(5): ("08:00", "19:00")}),
    "BR-AM": WeeklyHours.of({range(5): ("08:00", "19:00")}),
}
STATE_LAWS = ("SP Lei 15.426/2014; AL Lei 7.782/2016; RJ Lei 7.868/2018; ES Lei 10.626/2017; "
              "AM Lei 306/2016")
CDC = "CDC (Lei 8.078/1990) art. "
WRITTEN = frozenset({"sms", "whatsapp", "email", "letter"})
TAX_ID = re.compile(r"\b\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}\b|\b\d{3}\.?\d{3}\.?\d{3}-?\d{2}\b")


class BrConfig(PackConfig, frozen=True, kw_only=True):
    """``hours_apply_to`` (at least voice); ``hours_nationwide``: the SP window in states
    without a law of their own."""

    hours_apply_to: frozenset[ContactChannel] = frozenset({"voice", "visit", *MESSAGE_CHANNELS})
    hours_nationwide: bool = True

    legal_limits = (Floor("hours_apply_to", frozenset({"voice"}), STATE_LAWS),)


class BrazilPack(RulePack):
    name = "compliance_br"
    country = "BR"
    version = "0.2.0"
    Config = BrConfig
    timezones = tuple(f"America/{z}" for z in (
        "Sao_Paulo", "Noronha", "Belem", "Fortaleza", "Recife", "Araguaina", "Maceio", "Bahia",
        "Campo_Grande", "Cuiaba", "Santarem", "Porto_Velho", "Boa_Vista", "Manaus", "Eirunepe",
        "Rio_Branco"))
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", CDC + "42, 42-A, 71",
             "No rule known to the pack forbids this contact now."),
        rule("outside_hours", "Outside the collection hours", f"{STATE_LAWS}; {CDC}71",
             "SP and AL: Mon-Fri 08:00-20:00, Sat 08:00-14:00; RJ Mon-Fri 09:00-19:00; ES "
             "and AM Mon-Fri 08:00-19:00 (RJ, ES, AM unverified). Other states: the SP "
             "window, the pack's conservative reading of art. 71 (rest and leisure), "
             "configurable. Every channel but letters by default.",
             verification="secondary", configurable=True),
        rule("closed_day", "Closed day", f"{STATE_LAWS}; {CDC}71",
             "No collection contact on Sundays (nor Saturdays in RJ, ES, AM).",
             verification="secondary", configurable=True),
        rule("public_holiday", "Public holiday", f"{STATE_LAWS}; {CDC}71",
             "No collection contact on national or state holidays (`holidays`; municipal "
             "holidays mostly missing).", verification="secondary", configurable=True),
        rule("creditor_identification_missing", "Supplier not identified", CDC + "42-A",
             "Every collection document must carry the supplier's name, address and "
             "CPF/CNPJ (checked on written messages and letters)."),
        rule("third_party_forbidden", "Third party", CDC + "42, 71",
             "Exposing the debtor to family, co-workers or references is vexatious "
             "collection; co-debtors and guarantors are obligors.", verification="secondary"),
        rule("court_document_lookalike", "Looks like a court document", CDC + "71",
             "No false, incorrect or misleading statements: nothing that poses as a court "
             "document."),
        rule("threat", "Threat, constraint or ridicule", CDC + "42, 71",
             "The consumer is not exposed to ridicule, constraint or threats."),
        rule("bureau_written_notice", "Written notice before negativação",
             CDC + "43 §2; STJ Súmulas 359, 404",
             "Opening a bureau record must be communicated in writing beforehand (the bureau "
             "sends it; no acknowledgement needed). E-mail or SMS alone may be invalid (STJ "
             "REsp 2.056.285): conservatively a postal notice is required; the report is "
             "lawful from the day after it.", verification="secondary"),
        rule("creditor_name_missing", "Creditor not named", CDC + "42-A",
             "An agency's notice or formal letter must name the creditor."),
        rule("bureau_five_year_limit", "Older than five years", CDC + "43 §1",
             "Bureaus may hold no negative information older than five years: a default "
             "older than that is not reported.", verification="secondary"),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.6",
             "The law file states no limitation period for judicial collection in Brazil: "
             "the pack gives no date after which collection is time-barred (never a "
             "guessed one). Counsel must supply the period.", verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = self.role_denial(contact, OBLIGORS)
        out += self.content_denials(contact, court=COURT_DOCUMENT_PT, threats=THREATS_PT)
        if contact.channel in WRITTEN and contact.content is not None:
            gaps = identification_gaps(contact)
            if gaps:
                out.append(self.reason("creditor_identification_missing", ", ".join(gaps)))
        return out

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        defaulted = query.today - timedelta(days=max(query.days_past_due, 0))
        if _add_years(defaulted, 5) <= query.today:
            return [self.finding("bureau_report", False, "bureau_five_year_limit",
                                 f"in default since {defaulted.isoformat()}")]
        if not query.notices or not query.written_notice:
            return [self.finding("bureau_report", False, "bureau_written_notice",
                                 "no written notice sent")]
        start = min(query.notices) + timedelta(days=1)
        return [self.finding("bureau_report", query.today >= start, "bureau_written_notice",
                             lawful_from=start)]

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        hours = STATE_HOURS.get(contact.debtor_subdivision or "")
        timed = contact.channel in config.hours_apply_to or (
            contact.debtor_subdivision == "BR-AL" and contact.channel == "sms")
        if not timed:
            return []
        if hours is None:
            if not config.hours_nationwide:
                return []
            hours = SP_HOURS
        return [self.hours_rule(contact, config, hours)]


def identification_gaps(contact: PlannedContact) -> list[str]:
    """What of name, address and CPF/CNPJ the content lacks (CDC art. 42-A)."""
    assert contact.content is not None
    text = f"{contact.content.subject or ''} {contact.content.text}"
    creditor = contact.creditor
    if creditor is None:
        return ["creditor unknown: name and address cannot be verified",
                *([] if TAX_ID.search(text) else ["CPF/CNPJ"])]
    gaps = [] if mentions(text, creditor.name) else ["name"]
    if not (mentions(text, creditor.address) if creditor.address else False):
        gaps.append("address")
    has_id = mentions(text, creditor.tax_id) if creditor.tax_id else bool(TAX_ID.search(text))
    if not has_id:
        gaps.append("CPF/CNPJ")
    return gaps if normalise(text) else ["empty content"]


def _add_years(day: date, years: int) -> date:
    """``day`` plus ``years`` (29 February becomes 28 February)."""
    year = day.year + years
    return date(year, day.month, min(day.day, monthrange(year, day.month)[1]))
