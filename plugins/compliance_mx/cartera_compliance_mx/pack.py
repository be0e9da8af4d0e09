"""Mexico: CONDUSEF "Disposiciones de carácter general aplicables a las entidades
financieras en materia de Despachos de Cobranza" (DOF 2014-10-07), CPF art. 284 Bis.

Readings (compliance.md §2.2):

* Hours: "comunicarse o presentarse en un horario de 7:00 a 22:00 horas, de acuerdo a los
  husos horarios en que se encuentre el Deudor": every channel, every day. The text sets no
  day-of-week or holiday restriction (press claims of "Mon-Fri, no holidays" are
  unverified): a tenant that wants them sets ``closed_weekdays`` and
  ``closed_on_holidays``. The article numbering of the Disposiciones was not captured, so
  references cite the instrument.
* Third parties: only joint obligors (obligados solidarios) and guarantors (avales).
* Contact points: only the address, phone or e-mail the debtor provided (reported by
  secondary sources): a contact point found elsewhere is refused.
* First contact: the disclosures are checked on the rendered content; a first contact
  with no content to check is refused (nothing proves the disclosures were made).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from cartera_sdk import PlannedContact, Reason, RuleDescription
from cartera_sdk.compliancekit import (
    OBLIGORS,
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    findings,
    mentions,
    normalise,
    rule,
)

HOURS = WeeklyHours.of({range(7): ("07:00", "22:00")}, closed_on_holidays=False)
DISPOSICIONES = "CONDUSEF, Disposiciones en materia de Despachos de Cobranza (DOF 2014-10-07)"
AUTHORITY = (re.compile(
    r"\b(procuraduria|ministerio publico|fiscalia|poder judicial|juzgado|gobierno federal|"
    r"autoridad (judicial|federal|competente))\b"),)
_AMOUNT = re.compile(r"(\$|mxn|pesos)\s?\d|\d[\d.,]*\s?(mxn|pesos)")
_ONLY_CREDITOR = re.compile(r"\b(solo|unicamente|exclusivamente)\b.{0,80}\bpag|"
                            r"\bpag\w*\b.{0,80}\b(solo|unicamente|exclusivamente)\b")
_COMPLAINTS = re.compile(r"\b(queja|quejas|unidad especializada|une)\b")


class MxConfig(PackConfig, frozen=True, kw_only=True):
    """Only the narrowing knobs of :class:`PackConfig` (the hour rule has no options)."""


class MexicoPack(RulePack):
    name = "compliance_mx"
    country = "MX"
    version = "0.1.0"
    Config = MxConfig
    timezones = (
        "America/Mexico_City", "America/Cancun", "America/Merida", "America/Monterrey",
        "America/Matamoros", "America/Chihuahua", "America/Ciudad_Juarez", "America/Ojinaga",
        "America/Mazatlan", "America/Bahia_Banderas", "America/Hermosillo", "America/Tijuana",
    )
    subdivisions = frozenset(f"MX-{s}" for s in (
        "AGU", "BCN", "BCS", "CAM", "CHH", "CHP", "CMX", "COA", "COL", "DUR", "GRO", "GUA",
        "HID", "JAL", "MEX", "MIC", "MOR", "NAY", "NLE", "OAX", "PUE", "QUE", "ROO", "SIN",
        "SLP", "SON", "TAB", "TAM", "TLA", "VER", "YUC", "ZAC"))
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", DISPOSICIONES,
             "No rule of the Disposiciones forbids this contact at this instant."),
        rule("outside_hours", "Outside 07:00-22:00", DISPOSICIONES,
             "Communicate or appear only 07:00-22:00 in the debtor's own time zone, on "
             "every channel ([07:00, 22:00), half-open). No day or holiday restriction in "
             "the text; tenants may add them.", configurable=True),
        rule("closed_day", "Weekday closed by the tenant", DISPOSICIONES,
             "The law sets no day restriction: only a tenant's stricter config closes days.",
             verification="unverified", configurable=True),
        rule("public_holiday", "Holiday closed by the tenant", DISPOSICIONES,
             "The law sets no holiday restriction: only a tenant's stricter config closes "
             "holidays (LFT art. 74 calendar).", verification="unverified",
             configurable=True),
        rule("third_party_forbidden", "Third party", DISPOSICIONES,
             "Collection from third parties, personal references and beneficiaries is "
             "prohibited, except joint obligors (obligados solidarios) and guarantors "
             "(avales). Family and employers: never."),
        rule("contact_point_not_provided", "Contact point not given by the debtor",
             DISPOSICIONES,
             "No collection at an address, phone or e-mail other than the one the debtor "
             "provided.", verification="secondary"),
        rule("first_contact_disclosure_missing", "First-contact disclosures missing",
             DISPOSICIONES,
             "At the first contact: who collects (agency and collector), for which creditor "
             "entity, the amount owed, where to complain, and that payments go only to the "
             "creditor. Checked on the rendered content; none to check is refused."),
        rule("court_document_lookalike", "Looks like a court document", DISPOSICIONES,
             "No documents resembling judicial writs."),
        rule("authority_impersonation", "Poses as an authority", DISPOSICIONES,
             "No names resembling public institutions, no posing as a court or authority."),
        rule("threat", "Threat or intimidation", f"{DISPOSICIONES}; CPF art. 284 Bis",
             "No threatening, offending or intimidating the debtor, family or co-workers; no "
             "blacklists or public exposure (a criminal offence under CPF 284 Bis). Stating "
             "legally possible consequences is not intimidation."),
        rule("creditor_name_missing", "Creditor not named", DISPOSICIONES,
             "An agency's notice or formal letter must name the creditor entity."),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = self.role_denial(contact, OBLIGORS)
        if contact.contact_origin == "found":
            out.append(self.reason("contact_point_not_provided"))
        out += self.content_denials(contact)
        if contact.content is not None:
            found = findings(contact.content.text, AUTHORITY)
            if found:
                out.append(self.reason("authority_impersonation", ", ".join(found)))
        if contact.is_first_contact:
            missing = first_contact_gaps(contact)
            if missing:
                out.append(self.reason("first_contact_disclosure_missing", ", ".join(missing)))
        return out

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        return [self.hours_rule(contact, config, HOURS)]


def first_contact_gaps(contact: PlannedContact) -> list[str]:
    """The first-contact disclosures the content lacks (empty: all present)."""
    if contact.content is None:
        return ["no content to check"]
    text = contact.content.text
    plain = normalise(text)
    creditor = contact.creditor
    gaps = []
    if creditor is None or not mentions(text, creditor.name):
        gaps.append("creditor entity")
    if creditor is not None and creditor.agency_name and not mentions(text, creditor.agency_name):
        gaps.append("collection agency")
    if not _AMOUNT.search(plain):
        gaps.append("amount owed")
    if not _COMPLAINTS.search(plain):
        gaps.append("complaints unit")
    if not _ONLY_CREDITOR.search(plain):
        gaps.append("payments only to the creditor")
    return gaps
