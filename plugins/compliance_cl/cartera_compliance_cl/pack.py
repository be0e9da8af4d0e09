"""Chile: Ley 19.496 art. 37 (as amended by Ley 21.320, in force 2021-04-20); CPC art. 59.

Readings (compliance.md §2.4):

* Hours: visits and phone calls "a la morada del deudor" only on días/horas hábiles (CPC
  art. 59): Mon-Sat 08:00-20:00, not on Sundays or holidays (national plus the region's,
  e.g. Arica 7 June). Whether messages sent at night are barred is unclear: by default SMS,
  WhatsApp and e-mail follow the same window (``hours_apply_to``; at least voice, visit).
* Caps (art. 37): at most one phone contact or visit a week; at most two contacts by other
  means (post, SMS, e-mail, instant messaging) a week, at least two days apart. "Week" is
  read as any rolling 7 days (it implies the calendar-week reading), and "at least two
  days apart" as two whole days between (Tuesday, then Friday) by default; a tenant may
  take Tuesday-Thursday (``message_spacing_days=2``), not less.
* Collection stops once the consumer is served in a collection suit or insolvency starts.
* Nothing that is, looks like or refers to a judicial writ or action; no mention of
  judicial consequences not begun or of a bureau registration (SERNAC).
* Bureau reports: no statutory prior notice was found (Ley 19.628, unverified).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar

from cartera_sdk import (
    ChargeFinding,
    ChargeQuery,
    ContactChannel,
    Money,
    PlannedContact,
    Prescription,
    PriorContact,
    Reason,
    RuleDescription,
)
from cartera_sdk.compliancekit import (
    COURT_DOCUMENT_ES,
    MESSAGE_CHANNELS,
    OBLIGORS,
    AtLeast,
    AtMost,
    Floor,
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    findings,
    rolling_cap,
    rule,
    spacing,
)

HOURS = WeeklyHours.of({range(6): ("08:00", "20:00")})
ART_37 = "Ley 19.496 art. 37"
CALLS: frozenset[str] = frozenset({"voice", "visit"})
JUDICIAL = (*COURT_DOCUMENT_ES, re.compile(
    r"\b(demanda|juicio|accion(es)? judicial(es)?|cobranza judicial|tribunales?|embargo|"
    r"remate|receptor judicial)\b"))
BUREAU = (re.compile(r"\b(dicom|boletin comercial|boletin de informaciones comerciales|"
                     r"registro de morosos|equifax)\b"),)
WEEK = timedelta(days=7)
FEE_GRACE_DAYS = 20
#: (upper bound in UF, rate) of art. 37's collection-fee bands.
FEE_BANDS = ((Decimal(10), Decimal("0.09")), (Decimal(50), Decimal("0.06")),
             (None, Decimal("0.03")))


def fee_cap(overdue_clp: Decimal, uf_value: Decimal) -> Decimal:
    """The art. 37 maximum collection charge on ``overdue_clp``, in whole pesos (down)."""
    fee, floor = Decimal(0), Decimal(0)
    for upper, rate in FEE_BANDS:
        top = overdue_clp if upper is None else min(overdue_clp, upper * uf_value)
        if top > floor:
            fee += (top - floor) * rate
        if upper is not None:
            floor = upper * uf_value
    return fee.to_integral_value(rounding=ROUND_DOWN)


class ClConfig(PackConfig, frozen=True, kw_only=True):
    """``hours_apply_to`` (at least voice, visit); caps no looser than art. 37."""

    hours_apply_to: frozenset[ContactChannel] = frozenset({"voice", "visit", *MESSAGE_CHANNELS})
    calls_per_week: int = 1
    messages_per_week: int = 2
    message_spacing_days: int = 3

    legal_limits = (
        Floor("hours_apply_to", frozenset({"voice", "visit"}), f"{ART_37}; CPC art. 59"),
        AtMost("calls_per_week", 1, ART_37),
        AtMost("messages_per_week", 2, ART_37),
        AtLeast("message_spacing_days", 2, ART_37),
    )


def _is_call(c: PriorContact) -> bool:
    return c.channel in CALLS


def _is_message(c: PriorContact) -> bool:
    return c.channel not in CALLS


class ChilePack(RulePack):
    name = "compliance_cl"
    country = "CL"
    version = "0.2.0"
    Config = ClConfig
    timezones = ("America/Santiago", "America/Punta_Arenas", "Pacific/Easter")
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", ART_37,
             "No rule of art. 37 forbids this contact at this instant."),
        rule("outside_hours", "Outside 08:00-20:00", f"{ART_37}; CPC art. 59",
             "Visits and calls only 08:00-20:00 (half-open) on working days. Conservative "
             "reading: messages follow the window by default (unclear in the law); a tenant "
             "may narrow it to calls and visits.", verification="secondary",
             configurable=True),
        rule("closed_day", "Sunday", f"{ART_37}; CPC art. 59",
             "No visits or calls on Sundays (feriados).", verification="secondary",
             configurable=True),
        rule("public_holiday", "Public holiday", f"{ART_37}; CPC art. 59",
             "No visits or calls on national or regional holidays (`holidays` with the "
             "region, version in each verdict).", verification="secondary",
             configurable=True),
        rule("weekly_call_cap", "A call or visit this week already", ART_37,
             "At most one phone contact or visit a week (any rolling 7 days).",
             configurable=True),
        rule("weekly_message_cap", "Two messages this week already", ART_37,
             "At most two contacts by post, SMS, e-mail or instant messaging a week (any "
             "rolling 7 days).", configurable=True),
        rule("message_spacing", "Messages too close together", ART_37,
             "Messages at least two days apart: read conservatively as two whole days "
             "between (Tuesday, then Friday); the text does not settle Tuesday-Thursday.",
             verification="unverified", configurable=True),
        rule("in_litigation", "Collection suit or insolvency", ART_37,
             "Extrajudicial collection stops once the consumer is served in a collection "
             "suit or insolvency proceedings start."),
        rule("third_party_forbidden", "Third party", ART_37,
             "No communications to third parties unrelated to the obligation; no conduct "
             "affecting the family life or the debtor's job. Co-debtors and guarantors are "
             "part of the obligation."),
        rule("court_document_lookalike", "Judicial appearance or reference", ART_37,
             "Nothing that is, looks like or refers to a judicial writ, resolution or action "
             "of any kind."),
        rule("bureau_threat", "Mentions a bureau registration", f"{ART_37}; SERNAC",
             "Collection may not mention a registration in financial or commercial bulletins "
             "(DICOM, Boletín Comercial).", verification="secondary"),
        rule("threat", "Harassment or exposure", ART_37,
             "Respect for dignity and physical and psychological integrity: no threats."),
        rule("no_fee_first_20_days", "No collection fee yet", ART_37,
             "No extrajudicial collection charge in the first 20 days of delay (an older "
             "text said 15).", verification="secondary"),
        rule("collection_fee_cap", "Collection fee cap", ART_37,
             "At most 9 % of the overdue amount up to 10 UF, 6 % on the part from 10 to 50 "
             "UF, 3 % above 50 UF."),
        rule("uf_value_required", "UF value needed", ART_37,
             "The fee bands are in UF: without today's UF value and the overdue amount in "
             "CLP, no fee is reported lawful."),
        rule("creditor_name_missing", "Creditor not named", f"{ART_37}; SERNAC",
             "An agency's notice or formal letter must identify the creditor.",
             verification="secondary"),
        rule("bureau_notice_not_found", "No prior-notice period found", "Ley 19.628",
             "No statutory prior notice before a report to DICOM or the Boletín Comercial "
             "was found (unverified): the pack sets none.", verification="unverified"),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.4",
             "The law file states no limitation period for judicial collection in Chile: "
             "the pack gives no date after which collection is time-barred (never a "
             "guessed one). Counsel must supply the period.", verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = self.role_denial(contact, OBLIGORS)
        if contact.in_litigation:
            out.append(self.reason("in_litigation"))
        out += self.content_denials(contact, court=JUDICIAL)
        if contact.content is not None:
            found = findings(contact.content.text, BUREAU)
            if found:
                out.append(self.reason("bureau_threat", ", ".join(found)))
        return out

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        return [self._fee(query), self.finding("bureau_report", True,
                                               "bureau_notice_not_found")]

    def _fee(self, query: ChargeQuery) -> ChargeFinding:
        if query.days_past_due <= FEE_GRACE_DAYS:
            start = query.today + timedelta(days=FEE_GRACE_DAYS + 1 - query.days_past_due)
            return self.finding("collection_fee", False, "no_fee_first_20_days",
                                lawful_from=start)
        overdue = query.overdue
        if overdue is None or overdue.currency != "CLP" or not query.uf_value:
            return self.finding("collection_fee", False, "uf_value_required")
        cap = fee_cap(overdue.amount, query.uf_value)
        return self.finding("collection_fee", True, "collection_fee_cap",
                            max_amount=Money(amount=cap, currency="CLP"))

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        rules: list[TimeRule] = []
        if contact.channel in config.hours_apply_to:
            rules.append(self.hours_rule(contact, config, HOURS))
        zone = self.primary_zone(contact)
        if contact.channel in CALLS:
            caps = [rolling_cap(contact, config.calls_per_week, WEEK,
                                self.reason("weekly_call_cap"), keep=_is_call)]
        else:
            caps = [rolling_cap(contact, config.messages_per_week, WEEK,
                                self.reason("weekly_message_cap"), keep=_is_message),
                    spacing(contact, zone, config.message_spacing_days,
                            self.reason("message_spacing"), keep=_is_message)]
        return [*rules, *(c for c in caps if c)]
