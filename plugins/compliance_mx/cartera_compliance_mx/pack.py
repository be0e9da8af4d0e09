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
* Minors and older adults: no collection, negotiation or restructuring with minors, nor
  with older adults unless the older adult is the debtor. Age comes from
  ``PlannedContact.recipient_age`` (unknown: not judged). Minor: under 18. Older adult:
  60 or more, the Ley de los Derechos de las Personas Adultas Mayores reading, which the
  law file does not give (unverified; a tenant may lower the threshold, never raise it).
* REDECO: a financial entity registers every agency it uses. An agency known not to be
  registered (``Creditor.agency_registered is False``) is refused; with
  ``require_agency_registration`` an agency not known to be registered is too. An agency
  whose name resembles a public institution is refused.
* PROFECO (commercial creditors, Acuerdo A/002/2015, secondary): no correspondence whose
  exterior shows it is a collection: a letter whose subject (what the envelope shows)
  mentions a debt or collection is refused. Its hours (no visits or calls 22:01-06:59)
  fit inside the CONDUSEF window, so one profile judges both.
* An agency may not receive payment directly: a message asking to pay the agency (a
  payment verb followed within a few words by the agency's name) is refused.
* Money: fees must be registered under the LTOSF and no collection-fee cap was found, so
  no fee is reported lawful; no interest cap is known. Bureau reports: no prior-notice
  period found; records are kept 72 months (LRSIC art. 23, secondary).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date
from functools import lru_cache
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
    AtMost,
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
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_OPERATION = re.compile(r"\b(contrato|credito|prestamo|financiamiento|tarjeta|cuenta|"
                        r"operacion|folio|pagare)\b")
_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|" \
    "octubre|noviembre|diciembre"
_DATE = re.compile(rf"\b\d{{1,2}} de ({_MONTHS})\b|\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b|"
                   r"\b\d{4}-\d{2}-\d{2}\b|\b(hoy|al dia de hoy|a la fecha)\b")
_SETTLE = re.compile(r"\b(liquidar|liquide|liquidacion|liquidarlo|condiciones|convenio|"
                     r"plazos?|parcialidades|mensualidades|descuento|quita)\b")
#: What an envelope must not show (PROFECO): that it is a collection.
_VISIBLE_COLLECTION = (re.compile(r"\b(cobranza|cobro|deuda|adeudo|moros[oa]|"
                                  r"requerimiento de pago|despacho de cobranza)\b"),)
ADULT_AGE = 18
OLDER_ADULT_AGE = 60
LDPAM = "Ley de los Derechos de las Personas Adultas Mayores art. 3"


class MxConfig(PackConfig, frozen=True, kw_only=True):
    """``older_adult_age``: from which age a recipient is an older adult (at most 60);
    ``require_agency_registration``: refuse an agency not known to be in REDECO."""

    older_adult_age: int = OLDER_ADULT_AGE
    require_agency_registration: bool = False

    legal_limits = (AtMost("older_adult_age", OLDER_ADULT_AGE, f"{DISPOSICIONES}; {LDPAM}"),)


class MexicoPack(RulePack):
    name = "compliance_mx"
    country = "MX"
    version = "0.2.0"
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
             "At the first contact: who collects (agency and collector) and the agency's "
             "phone, for which creditor entity, the contract or operation, the amount owed "
             "and the date it was calculated, the conditions to settle, where to complain, "
             "and that payments go only to the creditor. Checked on the rendered content "
             "(the agency's address and the collector's name cannot be told apart from "
             "other text and are not checked); none to check is refused."),
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
        rule("agency_takes_payment", "Asks to pay the agency", DISPOSICIONES,
             "A collection agency may not receive payment directly, by any means: payments "
             "go only to the creditor entity."),
        rule("minor_recipient", "Recipient is a minor", DISPOSICIONES,
             "No collection, negotiation or restructuring with minors (under 18), whatever "
             "their role."),
        rule("older_adult_recipient", "Recipient is an older adult", f"{DISPOSICIONES}; {LDPAM}",
             "No collection, negotiation or restructuring with older adults unless the "
             "older adult is the debtor. Older adult read as 60 or more (LDPAM art. 3, not "
             "in the law file); a tenant may lower the age.", verification="unverified",
             configurable=True),
        rule("agency_not_registered", "Agency not registered in REDECO",
             f"{DISPOSICIONES}; REDECO; LTOSF art. 41",
             "A financial entity registers every collection agency it uses in REDECO (name, "
             "RFC, address, the phones and e-mail used for collection, collectors): an "
             "agency known not to be registered may not collect; a tenant may also refuse "
             "one not known to be registered.", configurable=True),
        rule("visible_collection_legend", "Envelope shows it is a collection",
             "PROFECO Acuerdo A/002/2015",
             "No correspondence with exterior legends that make visible it is a collection: "
             "a letter's subject (what the envelope shows) may not mention a debt or "
             "collection.", verification="secondary"),
        rule("fee_not_reported_lawful", "Collection fee not known lawful",
             "LTOSF (fee registration); CONDUSEF",
             "Fees must be registered under the LTOSF and CONDUSEF or Banxico may object; no "
             "collection-fee cap was found and the pack cannot see the registration: no "
             "fee or penalty is reported lawful (conservative).", verification="unverified"),
        rule("interest_cap_unknown", "No interest rule known", "LTOSF; CONDUSEF",
             "The law file gives no moratory-interest rule or cap for Mexico: moratory "
             "interest is not reported lawful (conservative); only the contract's "
             "registered terms can say.", verification="unverified"),
        rule("bureau_notice_not_found", "No prior-notice period found", "LRSIC art. 23",
             "No statutory prior-notice period before a credit-bureau report was found "
             "(unverified): the pack sets none.", verification="unverified"),
        rule("bureau_history_expired", "Older than the bureau's 72 months", "LRSIC art. 23",
             "Credit bureaus keep records for 72 months: a default older than that is not "
             "reported.", verification="secondary"),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.2",
             "The law file states no limitation period for judicial collection in Mexico: "
             "the pack gives no date after which collection is time-barred (never a "
             "guessed one). Counsel must supply the period.", verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = self.role_denial(contact, OBLIGORS)
        age = contact.recipient_age
        if age is not None and age < ADULT_AGE:
            out.append(self.reason("minor_recipient", f"age {age}"))
        elif (age is not None and age >= config.older_adult_age
              and contact.recipient_role != "debtor"):
            out.append(self.reason("older_adult_recipient",
                                   f"age {age}, recipient role {contact.recipient_role}"))
        if contact.contact_origin == "found":
            out.append(self.reason("contact_point_not_provided"))
        out += self.agency_denials(contact, config)
        out += self.content_denials(contact)
        if contact.content is not None:
            found = findings(contact.content.text, AUTHORITY)
            if found:
                out.append(self.reason("authority_impersonation", ", ".join(found)))
            agency = contact.creditor.agency_name if contact.creditor else None
            if agency and _pays_agency(contact.content.text, agency):
                out.append(self.reason("agency_takes_payment", agency))
            if contact.channel == "letter" and contact.content.subject:
                found = findings(contact.content.subject, _VISIBLE_COLLECTION)
                if found:
                    out.append(self.reason("visible_collection_legend", ", ".join(found)))
        if contact.is_first_contact:
            missing = first_contact_gaps(contact)
            if missing:
                out.append(self.reason("first_contact_disclosure_missing", ", ".join(missing)))
        return out

    def agency_denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        creditor = contact.creditor
        if creditor is None:
            return []
        out = []
        found = _impersonating(creditor.agency_name, creditor.name)
        if found:
            out.append(self.reason("authority_impersonation",
                                   "name resembles a public institution: " + ", ".join(found)))
        if creditor.agency_name and (creditor.agency_registered is False or (
                creditor.agency_registered is None and config.require_agency_registration)):
            state = "not registered" if creditor.agency_registered is False else "unknown"
            out.append(self.reason("agency_not_registered", f"{creditor.agency_name}: {state}"))
        return out

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        return [self.hours_rule(contact, config, HOURS)]

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        defaulted = date.fromordinal(query.today.toordinal() - max(query.days_past_due, 0))
        expired = _add_months(defaulted, 72) <= query.today
        bureau = (self.finding("bureau_report", False, "bureau_history_expired",
                               f"in default since {defaulted.isoformat()}") if expired else
                  self.finding("bureau_report", True, "bureau_notice_not_found"))
        return [self.finding("collection_fee", False, "fee_not_reported_lawful"),
                self.finding("late_penalty", False, "fee_not_reported_lawful"),
                self.finding("moratory_interest", False, "interest_cap_unknown"), bureau]

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))


@lru_cache(maxsize=1024)
def _impersonating(*names: str | None) -> tuple[str, ...]:
    """What in the agency's or creditor's name resembles a public institution (cached:
    a tenant has one creditor, judged for every contact)."""
    return tuple(f for n in names if n for f in findings(n, AUTHORITY))


_PAY = r"\b(pague|paga|pagar|pagarle|deposite|deposita|depositar|transfiera|transfiere|" \
    r"transferir|abone|abonar|entregue)\b(\s+[^\s.;:!?]+){0,6}?\s+"


def _pays_agency(text: str, agency: str) -> bool:
    """Whether ``text`` asks to pay ``agency`` ("deposite a la cuenta de <agency>")."""
    name = re.escape(normalise(agency).strip())
    return bool(name) and re.search(_PAY + name, normalise(text)) is not None


def _add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months (the last day of a shorter month)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


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
    if not _PHONE.search(plain):
        gaps.append("agency phone")
    if not _OPERATION.search(plain):
        gaps.append("contract or operation")
    if not _AMOUNT.search(plain):
        gaps.append("amount owed")
    if not _DATE.search(plain):
        gaps.append("date the amount was calculated")
    if not _SETTLE.search(plain):
        gaps.append("conditions to settle")
    if not _COMPLAINTS.search(plain):
        gaps.append("complaints unit")
    if not _ONLY_CREDITOR.search(plain):
        gaps.append("payments only to the creditor")
    return gaps
