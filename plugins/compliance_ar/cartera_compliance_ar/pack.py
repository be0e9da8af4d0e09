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
* CABA: the debtor must be told the claim was handed to an agent, with the agent's name;
  an agency's notice must name the creditor and the agency.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cartera_sdk import PlannedContact, Reason, RuleDescription
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


class ArConfig(PackConfig, frozen=True, kw_only=True):
    """``hours_nationwide``: apply the CABA window outside CABA too (conservative)."""

    hours_nationwide: bool = True


class ArgentinaPack(RulePack):
    name = "compliance_ar"
    country = "AR"
    version = "0.1.0"
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
             "guarantors are obligors, except in CABA, where only the debtor may be "
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
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        in_caba = contact.debtor_subdivision == "AR-C"
        out = self.role_denial(contact, frozenset({"debtor"}) if in_caba else OBLIGORS)
        out += self.content_denials(contact)
        creditor, content = contact.creditor, contact.content
        if (in_caba and creditor is not None and creditor.agency_name and content is not None
                and content.kind in ("notice", "formal_letter")
                and not mentions(content.text, creditor.agency_name)):
            out.append(self.reason("agency_identification_missing", creditor.agency_name))
        return out

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        in_caba = contact.debtor_subdivision == "AR-C"
        if contact.channel not in TIMED or not (in_caba or config.hours_nationwide):
            return []
        return [self.hours_rule(contact, config, HOURS)]
