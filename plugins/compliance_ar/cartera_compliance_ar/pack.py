"""Argentina: Ley 24.240 art. 8 bis (trato digno); Ciudad de Buenos Aires Ley 6171
(amended by Ley 6271).

Readings (compliance.md §2.5):

* No national hour rule. CABA's Ley 6171 sets hours; the window found (Mon-Fri
  08:00-20:00, Sat 08:00-12:00) comes from one secondary source, so it is applied to CABA
  debtors (AR-C) and, as the conservative reading of art. 8 bis (no vexatious or
  intimidating conduct), to every province by default (``hours_nationwide``; a tenant may
  turn it off outside CABA). Sundays and holidays (national plus provincial, bridge days
  included) are closed. Letters are not a contact at an hour.
* Third parties: disclosing the debt to third parties (family, employer) is "vergonzante"
  (art. 8 bis, CNACAF Sala III 2022); co-debtors and guarantors are obligors. In CABA, no
  messages to anyone other than the debtor.
* Any means giving an extrajudicial claim the appearance of a judicial one is forbidden.
* CABA's law applies to debtors domiciled there and to collection agents domiciled there
  (``agent_in_caba``: the tenant's agent is, so CABA's rules apply to every debtor).
* CABA: the debtor must be told the claim was handed to an agent, with the agent's name;
  an agency's notice must name the creditor and the agency.
* CABA: no notifying through work phones, work e-mail or workplaces, nor contacting
  employers. A contact point marked ``work`` (``PlannedContact.contact_point_use``) is
  refused in CABA and, as the conservative reading of art. 8 bis (disclosure to the
  employer is "vergonzante"), everywhere by default (``work_contact_ban_nationwide``).
* Money (BCRA "Tasas de interés en las operaciones de crédito" 1.7, Com. "A" 5460,
  secondary): a supervised lender may add no commission or charge that raises the
  interest; on a defaulted credit only the reimbursement of expenses actually incurred
  (protest, court costs). No fee is reported lawful; no interest cap is known.
* Bureau reports: no prior-notice rule; data older than five years are not reported
  (Ley 25.326 art. 26.4).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date
from typing import Any, ClassVar

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
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    mentions,
    rule,
)

HOURS = WeeklyHours.of({range(5): ("08:00", "20:00"), 5: ("08:00", "12:00")})
ART = "Ley 24.240 art. 8 bis"
CABA = "CABA Ley 6171 (Ley 6271)"
TIMED = frozenset({"voice", "visit", "sms", "whatsapp", "email"})
BCRA = 'BCRA "Tasas de interés en las operaciones de crédito" 1.7 (Com. "A" 5460)'
HABEAS_DATA = "Ley 25.326 art. 26.4"
BUREAU_YEARS = 5


class ArConfig(PackConfig, frozen=True, kw_only=True):
    """``hours_nationwide``: apply the CABA window outside CABA too (conservative);
    ``work_contact_ban_nationwide``: refuse work contact points outside CABA too;
    ``agent_in_caba``: the collection agent is domiciled in CABA (Ley 6171 then applies
    to every debtor)."""

    hours_nationwide: bool = True
    work_contact_ban_nationwide: bool = True
    agent_in_caba: bool = False


class ArgentinaPack(RulePack):
    name = "compliance_ar"
    country = "AR"
    version = "0.2.0"
    Config = ArConfig
    timezones = (*(f"America/Argentina/{z}" for z in (
        "Buenos_Aires", "Catamarca", "Cordoba", "Jujuy", "La_Rioja", "Mendoza", "Rio_Gallegos",
        "Salta", "San_Juan", "San_Luis", "Tucuman", "Ushuaia")), "America/Buenos_Aires")
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", ART, "No rule known to the pack forbids this contact now."),
        rule("outside_hours", "Outside the collection hours", f"{CABA}; {ART}",
             "Mon-Fri 08:00-20:00, Sat 08:00-12:00 (half-open), every channel but letters. "
             "The CABA hours are from one secondary source; outside CABA there is no "
             "national rule and the window is the pack's conservative reading of art. 8 "
             "bis (configurable).", verification="unverified", configurable=True),
        rule("closed_day", "Sunday", f"{CABA}; {ART}",
             "No collection contact on Sundays (same reading as the hours).",
             verification="unverified", configurable=True),
        rule("public_holiday", "Public holiday", f"{CABA}; {ART}",
             "No collection contact on national or provincial holidays, bridge days "
             "included (`holidays`, version in each verdict).", verification="unverified",
             configurable=True),
        rule("third_party_forbidden", "Third party", f"{ART}; {CABA}",
             "Disclosing the debt to third parties (family, employer, references) puts the "
             "debtor in a shameful situation (CNACAF Sala III, 2022). Co-debtors and "
             "guarantors are obligors, except under CABA's law (a debtor or, with "
             "agent_in_caba, an agent domiciled in CABA), where only the debtor may be "
             "contacted.", verification="secondary"),
        rule("court_document_lookalike", "Appearance of a judicial claim", ART,
             "No means that gives an extrajudicial claim the appearance of a judicial one."),
        rule("threat", "Shaming or intimidation", ART,
             "No conduct placing the consumer in shameful, vexatious or intimidating "
             "situations."),
        rule("creditor_name_missing", "Creditor not named", CABA,
             "An agency's notice must say whose claim it collects.",
             verification="secondary"),
        rule("agency_identification_missing", "Agent not identified", CABA,
             "In CABA, the debtor must be told the claim was handed to an agent, with the "
             "agent's name: an agency's notice must name the agency.",
             verification="secondary"),
        rule("work_contact_point", "Work contact point", f"{CABA}; {ART}",
             "No collection through work phones, work e-mail or the workplace, nor through "
             "the employer (CABA). Outside CABA the pack applies it by default, its "
             "conservative reading of art. 8 bis (disclosure to the employer is "
             "shameful); a tenant may turn it off there.", verification="secondary",
             configurable=True),
        rule("only_actual_expenses", "No collection fee or penalty", BCRA,
             "No commissions or charges that directly or indirectly raise the interest; on "
             "a defaulted credit only the reimbursement of expenses actually incurred to "
             "protect or recover it (protest, court costs), which is not a fee: no "
             "collection fee or late penalty is reported lawful.", verification="secondary"),
        rule("fee_rules_unknown", "Fee rules not researched", ART,
             "For creditors outside the BCRA, fee and interest rules were not researched: "
             "no fee, penalty or interest is reported lawful (conservative).",
             verification="unverified"),
        rule("interest_cap_unknown", "No interest cap known", BCRA,
             "The law file gives no moratory-interest cap for Argentina: moratory interest "
             "is not reported lawful (conservative); only charges that do not raise the "
             "interest beyond the contract's.", verification="unverified"),
        rule("no_bureau_notice_rule", "No prior notice needed", HABEAS_DATA,
             "Argentina has no prior-notice rule before a credit-bureau report; data on "
             "solvency may be kept for the last five years (two after payment)."),
        rule("bureau_data_expired", "Older than five years", HABEAS_DATA,
             "Only data of the last five years may be kept or ceded: a default older than "
             "that is not reported."),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.5",
             "The law file states no limitation period for judicial collection in "
             "Argentina: the pack gives no date after which collection is time-barred "
             "(never a guessed one). Counsel must supply the period.",
             verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        in_caba = contact.debtor_subdivision == "AR-C" or config.agent_in_caba
        out = self.role_denial(contact, frozenset({"debtor"}) if in_caba else OBLIGORS)
        if contact.contact_point_use == "work" and (
                in_caba or config.work_contact_ban_nationwide):
            out.append(self.reason("work_contact_point", f"channel {contact.channel}"))
        out += self.content_denials(contact)
        creditor, content = contact.creditor, contact.content
        if (in_caba and creditor is not None and creditor.agency_name and content is not None
                and content.kind in ("notice", "formal_letter")
                and not mentions(content.text, creditor.agency_name)):
            out.append(self.reason("agency_identification_missing", creditor.agency_name))
        return out

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        in_caba = contact.debtor_subdivision == "AR-C" or config.agent_in_caba
        if contact.channel not in TIMED or not (in_caba or config.hours_nationwide):
            return []
        return [self.hours_rule(contact, config, HOURS)]

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        defaulted = date.fromordinal(query.today.toordinal() - max(query.days_past_due, 0))
        expiry = _add_years(defaulted, BUREAU_YEARS)
        bureau = (self.finding("bureau_report", False, "bureau_data_expired",
                               f"in default since {defaulted.isoformat()}")
                  if expiry <= query.today else
                  self.finding("bureau_report", True, "no_bureau_notice_rule"))
        if query.creditor_kind != "supervised_lender":
            return [*(self.finding(k, False, "fee_rules_unknown")
                      for k in ("collection_fee", "late_penalty", "moratory_interest")),
                    bureau]
        return [self.finding("collection_fee", False, "only_actual_expenses"),
                self.finding("late_penalty", False, "only_actual_expenses"),
                self.finding("moratory_interest", False, "interest_cap_unknown"), bureau]

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))


def _add_years(day: date, years: int) -> date:
    """``day`` plus ``years`` (29 February becomes 28 February)."""
    year = day.year + years
    return date(year, day.month, min(day.day, monthrange(year, day.month)[1]))
