"""Peru: Ley 29571 (Código de Protección y Defensa del Consumidor) arts. 61-62.

Readings (compliance.md §2.1):

* Art. 62.b bans *visits and phone calls* 20:00-07:00 and on Saturdays, Sundays and
  (national) holidays. Whether Indecopi extends it to SMS, WhatsApp and e-mail through
  62.g is unverified, so by default the window covers them too (``hours_apply_to``); a
  tenant may narrow that to the literal {voice, visit}, never below.
* Letters are not a contact at an hour (the post delivers them), so not covered by
  default; a tenant may add them.
* Third parties: the guarantor is named by the law (62.a, 62.c); co-debtors are obligors
  too. Anyone else (references, family, employer) is refused: 62.f and art. 61.
* Addresses: an Indecopi guide (secondary) bars collection demands at addresses the
  consumer did not authorise: a visit or letter to an address found elsewhere is refused.
* Money (Ley 28587 art. 6 as amended by Ley 31143; Res. SBS 3274-2017 Anexo 3): an
  SBS-supervised lender may charge no penalty, commission or collection cost for late
  payment, only moratory interest at most at the BCRP rate for operations outside the
  financial system. The law file gives no figure for that rate, so it is a tenant config
  figure (``moratory_rate_cap_percent``); until it is set the pack does not report
  moratory interest lawful (the conservative default).
* Bureau reports: no statutory prior-notice period was found (unverified).
* Prescription: the law file gives no limitation period; the pack gives no date.
"""

from __future__ import annotations

from decimal import Decimal
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
    MESSAGE_CHANNELS,
    OBLIGORS,
    Floor,
    PackConfig,
    RulePack,
    TimeRule,
    WeeklyHours,
    rule,
)

HOURS = WeeklyHours.of({range(5): ("07:00", "20:00")})
ART_62B = "Ley 29571 art. 62.b"


ART_6 = "Ley 28587 art. 6 (Ley 31143)"
#: Channels that reach an address (62.f guide: no demands at unauthorised addresses).
ADDRESSED: frozenset[str] = frozenset({"visit", "letter"})


class PeConfig(PackConfig, frozen=True, kw_only=True):
    """``hours_apply_to``: channels the art. 62.b window covers (at least voice, visit).
    ``moratory_rate_cap_percent``: the BCRP moratory rate for operations outside the
    financial system (effective annual, percent), as the tenant reads it today; ``None``
    (default): unknown, and moratory interest is not reported lawful."""

    hours_apply_to: frozenset[ContactChannel] = frozenset({"voice", "visit", *MESSAGE_CHANNELS})
    moratory_rate_cap_percent: Decimal | None = None

    legal_limits = (Floor("hours_apply_to", frozenset({"voice", "visit"}), ART_62B),)

    def __post_init__(self) -> None:
        super().__post_init__()
        cap = self.moratory_rate_cap_percent
        if cap is not None and not (cap.is_finite() and cap >= 0):
            raise ValueError("moratory_rate_cap_percent: must be a non-negative percentage")


class PeruPack(RulePack):
    name = "compliance_pe"
    country = "PE"
    version = "0.2.0"
    Config = PeConfig
    timezones = ("America/Lima",)
    subdivisions = frozenset({
        "PE-AMA", "PE-ANC", "PE-APU", "PE-ARE", "PE-AYA", "PE-CAJ", "PE-CAL", "PE-CUS",
        "PE-HUC", "PE-HUV", "PE-ICA", "PE-JUN", "PE-LAL", "PE-LAM", "PE-LIM", "PE-LMA",
        "PE-LOR", "PE-MDD", "PE-MOQ", "PE-PAS", "PE-PIU", "PE-PUN", "PE-SAM", "PE-TAC",
        "PE-TUM", "PE-UCA",
    })
    RULES: ClassVar[tuple[RuleDescription, ...]] = (
        rule("allowed", "Allowed", "Ley 29571 arts. 61-62",
              "No rule of arts. 61-62 forbids this contact at this instant."),
        rule("outside_hours", "Outside 07:00-20:00", ART_62B,
              "No visits or calls between 20:00 and 07:00 (debtor's local time, half-open "
              "[07:00, 20:00)). Conservative reading: SMS, WhatsApp and e-mail follow the "
              "same window by default (62.g extension unverified); a tenant may narrow it to "
              "calls and visits only, as the text reads, never further.",
              configurable=True),
        rule("closed_day", "Saturday or Sunday", ART_62B,
              "No visits or calls on Saturdays and Sundays (same channels as the hours).",
              configurable=True),
        rule("public_holiday", "Public holiday", ART_62B,
              "No visits or calls on national holidays (feriados; `holidays` calendar, "
              "version recorded in each verdict). Executive non-working days are not "
              "feriados.", configurable=True),
        rule("third_party_forbidden", "Third party", "Ley 29571 art. 62.f; art. 61",
              "Collection contact only with the debtor, a co-debtor or the guarantor: "
              "communications to third parties that reveal the delinquency are banned "
              "(62.f, reported by secondary sources), as is harming the debtor's image "
              "before third parties (art. 61). References, family and employers: never.",
              verification="secondary"),
        rule("court_document_lookalike", "Looks like a court document",
              "Ley 29571 art. 62.a",
              "No documents that look like judicial notices or writs (juzgado, notificación "
              "judicial, orden de embargo...)."),
        rule("threat", "Threat or exposure", "Ley 29571 art. 61; Indecopi RF 0215-2021/CC1",
              "No threats (jail, police, telling family, employer or neighbours, debtor "
              "lists): methods that harm reputation, privacy or work are banned.",
              verification="secondary"),
        rule("no_collection_fee", "No collection fee or penalty",
             "Ley 28587 art. 6 (Ley 31143); Res. SBS 3274-2017 Anexo 3",
             "SBS-supervised lenders may not charge penalties, commissions or collection "
             "costs for late payment (calls, letters, visits): only moratory interest."),
        rule("fee_rules_unknown", "Fee rules not researched", "Ley 29571",
             "For creditors outside the SBS (retail, telecoms), fee and interest rules "
             "were not researched: no fee, penalty or interest is reported lawful "
             "(conservative).", verification="unverified"),
        rule("moratory_interest_only", "Moratory interest only", ART_6,
             "Moratory interest from the date of default, at most the BCRP rate for "
             "operations outside the financial system (the tenant's configured figure); "
             "no capitalisation of interest.", configurable=True),
        rule("moratory_rate_unknown", "BCRP moratory rate not configured", ART_6,
             "Moratory interest is capped at the BCRP rate for operations outside the "
             "financial system. The law file gives no figure: until the tenant configures "
             "it (moratory_rate_cap_percent) the pack does not report moratory interest "
             "lawful (conservative).", verification="unverified", configurable=True),
        rule("bureau_notice_not_found", "No prior-notice period found",
             "Ley 29733; Ley 27489 (no prior-notice rule found)",
             "No statutory prior-notice period before a negative credit-bureau report was "
             "found; the pack sets none (unverified). Once a debt is regularised, the "
             "entity reports it to the SBS within 7 business days (Ley Infocorp, Res. SBS "
             "02531-2025).", verification="unverified"),
        rule("unauthorised_address", "Address not authorised by the debtor",
             "Ley 29571 arts. 61, 62.f (Indecopi guide)",
             "No collection demands at addresses the consumer did not authorise: a visit or "
             "letter to an address found elsewhere (skip tracing, a bureau) is refused.",
             verification="secondary"),
        rule("prescription_period_unknown", "Limitation period not researched",
             "none in compliance.md §2.1",
             "The law file states no limitation period for judicial collection in Peru: the "
             "pack gives no date after which collection is time-barred (never a guessed "
             "one). Counsel must supply the period.", verification="unverified"),
        rule("creditor_name_missing", "Creditor not named", "Ley 29571 art. 61",
              "An agency's notice or formal letter must name the creditor. Not codified for "
              "collection messages; conservative reading of the duty of truthful "
              "information.", verification="unverified"),
    )

    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        out = [*self.role_denial(contact, OBLIGORS), *self.content_denials(contact)]
        if contact.channel in ADDRESSED and contact.contact_origin == "found":
            out.append(self.reason("unauthorised_address"))
        return out

    def charges(self, query: ChargeQuery, config: Any = None) -> list[ChargeFinding]:
        bureau = self.finding("bureau_report", True, "bureau_notice_not_found")
        if query.creditor_kind != "supervised_lender":
            return [*(self.finding(k, False, "fee_rules_unknown")
                      for k in ("collection_fee", "late_penalty", "moratory_interest")),
                    bureau]
        cap = (config or PeConfig()).moratory_rate_cap_percent
        interest = (self.finding("moratory_interest", False, "moratory_rate_unknown")
                    if cap is None else
                    self.finding("moratory_interest", True, "moratory_interest_only",
                                 f"at most {cap} % effective annual (BCRP rate as configured)"))
        return [self.finding("collection_fee", False, "no_collection_fee"),
                self.finding("late_penalty", False, "no_collection_fee"), interest, bureau]

    def prescription(self, query: ChargeQuery) -> Prescription:
        return Prescription(time_barred_from=None,
                            reason=self.reason("prescription_period_unknown"))

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        if contact.channel not in config.hours_apply_to:
            return []
        return [self.hours_rule(contact, config, HOURS)]
