"""Mexico pack: 07:00-22:00 in the debtor's own zone (DST on the border), third parties,
contact origin, first-contact disclosures, impersonation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_mx
import msgspec
import pytest
from cartera_compliance_mx import MexicoPack, MxConfig
from cartera_sdk import (
    Allow,
    ChargeQuery,
    ContactContent,
    Creditor,
    Defer,
    Deny,
    PlannedContact,
    collect,
)
from cartera_sdk.testkit import CompliancePackConformance

CDMX = ZoneInfo("America/Mexico_City")
TIJUANA = ZoneInfo("America/Tijuana")
PACK = MexicoPack()
BANK = Creditor(name="Banco Azteca Norte", agency_name="Despacho Legal Orión")
DISCLOSURE = (
    "Le contacta Despacho Legal Orión, gestor Juan Pérez (Av. Reforma 10, CDMX, 55 1234 "
    "5678) por su crédito 4411 con Banco Azteca Norte. Adeudo: $5,300.00 MXN al 1 de marzo. "
    "Puede liquidar en 3 pagos. Quejas: une@bancoazteca.example, 55 0000 0000. Los pagos "
    "solo podrán hacerse a Banco Azteca Norte."
)


def contact(at: datetime, channel: str = "sms", tz: str = "America/Mexico_City",
            **fields: Any) -> PlannedContact:
    return PlannedContact(channel=channel, planned_at=at, debtor_country="MX",  # type: ignore[arg-type]
                          debtor_timezone=tz, **fields)


class TestMexicoConformance(CompliancePackConformance):
    @pytest.fixture
    def pack(self) -> MexicoPack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Tijuana"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return [None, "MX-BCN"]


class TestMexicoStrictDays(TestMexicoConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack_config(self) -> MxConfig:
        return MxConfig(closed_weekdays=frozenset({5, 6}), closed_on_holidays=True)


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_mx, "register_compliance_packs")
    assert [p.country for p in packs] == ["MX"]


def test_every_day_seven_to_twenty_two_in_the_debtors_zone() -> None:
    sunday = contact(datetime(2026, 3, 1, 21, 59, tzinfo=CDMX))
    assert isinstance(PACK.judge(sunday, MxConfig()), Allow)  # no day rule in the text
    late = PACK.judge(contact(datetime(2026, 3, 1, 22, 0, tzinfo=CDMX)), MxConfig())
    assert isinstance(late, Defer)
    assert late.until == datetime(2026, 3, 2, 7, 0, tzinfo=CDMX)
    assert late.reasons[0].code == "outside_hours"


def test_tijuana_follows_us_dst() -> None:
    # 2026-03-08 02:00 PST -> 03:00 PDT. 06:30 local on 8 March is 13:30 UTC.
    at = datetime(2026, 3, 8, 13, 30, tzinfo=UTC)
    verdict = PACK.judge(contact(at, tz="America/Tijuana"), MxConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 8, 7, 0, tzinfo=TIJUANA)
    assert verdict.until.utcoffset() == timedelta(hours=-7)


def test_unknown_zone_uses_the_intersection_of_mexicos_zones() -> None:
    at = datetime(2026, 1, 12, 12, 30, tzinfo=UTC)  # 07:30 Cancún, 04:30 Tijuana
    assert isinstance(PACK.judge(contact(at, tz="America/Cancun"), MxConfig()), Allow)
    guess = PACK.judge(contact(at, tz="America/Cancun", timezone_known=False), MxConfig())
    assert isinstance(guess, Defer)
    assert guess.until == datetime(2026, 1, 12, 15, 0, tzinfo=UTC)  # 07:00 in Tijuana


def test_a_tenant_may_close_weekends_and_holidays() -> None:
    strict = MxConfig(closed_weekdays=frozenset({5, 6}), closed_on_holidays=True)
    verdict = PACK.judge(contact(datetime(2026, 3, 16, 10, 0, tzinfo=CDMX)), strict)
    assert isinstance(verdict, Defer)  # 16 March 2026: Benito Juárez day (LFT art. 74)
    assert verdict.reasons[0].code == "public_holiday"


@pytest.mark.parametrize(("role", "allowed"), [
    ("debtor", True), ("co_debtor", True), ("guarantor", True), ("reference", False),
    ("family", False), ("employer", False)])
def test_third_parties(role: str, allowed: bool) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), recipient_role=role),
                         MxConfig())
    assert isinstance(verdict, Allow if allowed else Deny)


def test_a_contact_point_the_debtor_did_not_give_is_refused() -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), contact_origin="found"),
                         MxConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].code == "contact_point_not_provided"


def test_first_contact_needs_the_disclosures() -> None:
    at = datetime(2026, 3, 3, 10, tzinfo=CDMX)
    full = contact(at, is_first_contact=True, creditor=BANK,
                   content=ContactContent(text=DISCLOSURE, kind="notice"))
    assert isinstance(PACK.judge(full, MxConfig()), Allow)
    bare = msgspec.structs.replace(full, content=ContactContent(text="Pague hoy su deuda."))
    verdict = PACK.judge(bare, MxConfig())
    assert isinstance(verdict, Deny)
    (reason,) = verdict.reasons
    assert reason.code == "first_contact_disclosure_missing"
    for gap in ("creditor entity", "collection agency", "amount owed", "complaints unit",
                "payments only to the creditor"):
        assert gap in reason.message
    silent = msgspec.structs.replace(full, content=None)
    assert isinstance(PACK.judge(silent, MxConfig()), Deny)
    later = msgspec.structs.replace(bare, is_first_contact=False)
    assert isinstance(PACK.judge(later, MxConfig()), Allow)


@pytest.mark.parametrize(("text", "code"), [
    ("Aviso de la Procuraduría de cobro federal", "authority_impersonation"),
    ("Orden de embargo: presentarse en el juzgado", "court_document_lookalike"),
    ("Sabemos donde vives. Avisaremos a tu familia.", "threat"),
])
def test_forbidden_content(text: str, code: str) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX),
                                 content=ContactContent(text=text)), MxConfig())
    assert isinstance(verdict, Deny)
    assert code in [r.code for r in verdict.reasons]


def test_an_agency_notice_must_name_the_creditor() -> None:
    notice = contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), creditor=BANK,
                     content=ContactContent(text="Despacho Legal Orión le recuerda su adeudo.",
                                            kind="notice"))
    verdict = PACK.judge(notice, MxConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].code == "creditor_name_missing"


@pytest.mark.parametrize("missing", [
    ("55 1234 5678", "agency phone"), ("por su crédito 4411 ", "contract or operation"),
    (" al 1 de marzo", "date the amount was calculated"),
    ("Puede liquidar en 3 pagos. ", "conditions to settle"),
])
def test_every_first_contact_disclosure_is_checked(missing: tuple[str, str]) -> None:
    cut, gap = missing
    text = DISCLOSURE.replace(cut, "").replace("55 0000 0000", "")
    assert text != DISCLOSURE
    found = contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), is_first_contact=True,
                    creditor=BANK, content=ContactContent(text=text, kind="notice"))
    verdict = PACK.judge(found, MxConfig())
    assert isinstance(verdict, Deny)
    (reason,) = verdict.reasons
    assert reason.code == "first_contact_disclosure_missing"
    assert gap in reason.message


@pytest.mark.parametrize(("age", "role", "code"), [
    (16, "debtor", "minor_recipient"), (17, "guarantor", "minor_recipient"),
    (60, "guarantor", "older_adult_recipient"), (72, "co_debtor", "older_adult_recipient"),
    (72, "debtor", None), (59, "guarantor", None), (18, "debtor", None), (None, "guarantor", None),
])
def test_no_collection_with_minors_or_with_older_adults_who_are_not_the_debtor(
        age: int | None, role: str, code: str | None) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), recipient_age=age,
                                 recipient_role=role), MxConfig())
    if code is None:
        assert isinstance(verdict, Allow)
    else:
        assert isinstance(verdict, Deny)
        assert [r.code for r in verdict.reasons] == [code]
        assert verdict.reasons[0].rule_ref


def test_the_older_adult_age_may_only_be_lowered() -> None:
    strict = msgspec.convert({"older_adult_age": 55}, MxConfig)
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), recipient_age=57,
                                 recipient_role="guarantor"), strict)
    assert isinstance(verdict, Deny)
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:older_adult_age"):
        msgspec.convert({"older_adult_age": 65}, MxConfig)


def test_an_agency_not_registered_in_redeco_may_not_collect() -> None:
    at = datetime(2026, 3, 3, 10, tzinfo=CDMX)
    unregistered = msgspec.structs.replace(BANK, agency_registered=False)
    verdict = PACK.judge(contact(at, creditor=unregistered), MxConfig())
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["agency_not_registered"]
    assert isinstance(PACK.judge(contact(at, creditor=BANK), MxConfig()), Allow)
    strict = MxConfig(require_agency_registration=True)
    assert isinstance(PACK.judge(contact(at, creditor=BANK), strict), Deny)
    registered = msgspec.structs.replace(BANK, agency_registered=True)
    assert isinstance(PACK.judge(contact(at, creditor=registered), strict), Allow)
    own = Creditor(name="Banco Azteca Norte")  # the entity collecting by itself
    assert isinstance(PACK.judge(contact(at, creditor=own), strict), Allow)


def test_an_agency_named_like_a_public_institution_is_denied() -> None:
    fake = Creditor(name="Banco Azteca Norte", agency_name="Procuraduría de Cobranza Nacional")
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), creditor=fake),
                         MxConfig())
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["authority_impersonation"]


def test_an_envelope_may_not_show_it_is_a_collection() -> None:
    at = datetime(2026, 3, 3, 10, tzinfo=CDMX)
    letter = contact(at, "letter", content=ContactContent(
        text="Estimado cliente: le escribimos sobre su cuenta.", subject="AVISO DE COBRANZA",
        kind="formal_letter"))
    verdict = PACK.judge(letter, MxConfig())
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["visible_collection_legend"]
    plain = msgspec.structs.replace(letter, content=msgspec.structs.replace(
        letter.content, subject="Correspondencia personal"))
    assert isinstance(PACK.judge(plain, MxConfig()), Allow)
    # An e-mail subject is not an envelope's exterior.
    email = msgspec.structs.replace(letter, channel="email")
    assert isinstance(PACK.judge(email, MxConfig()), Allow)


def test_charges_check_for_mexico() -> None:
    query = ChargeQuery(debtor_country="MX", today=date(2026, 3, 10), days_past_due=40)
    found = {f.kind: f for f in PACK.charges(query)}
    assert set(found) == {"collection_fee", "late_penalty", "moratory_interest",
                          "bureau_report"}
    assert not found["collection_fee"].allowed
    assert not found["late_penalty"].allowed
    assert not found["moratory_interest"].allowed
    assert found["bureau_report"].allowed
    listed = {r.code for r in PACK.rules()}
    assert all(f.reason.code in listed and f.reason.rule_ref for f in found.values())
    # 72 months of history at the bureau: 2020-03-10 + 72 months = 2026-03-10.
    old = ChargeQuery(debtor_country="MX", today=date(2026, 3, 10),
                      days_past_due=(date(2026, 3, 10) - date(2020, 3, 10)).days)
    bureau = {f.kind: f for f in PACK.charges(old)}["bureau_report"]
    assert (bureau.allowed, bureau.reason.code) == (False, "bureau_history_expired")
    prescription = PACK.prescription(query)
    assert prescription.time_barred_from is None
    assert prescription.reason.code == "prescription_period_unknown"


@pytest.mark.parametrize(("text", "denied"), [
    ("Deposite hoy a la cuenta de Despacho Legal Orión.", True),
    ("Pague directamente a Despacho Legal Orión su adeudo.", True),
    ("Pague en Banco Azteca Norte. Despacho Legal Orión le atiende.", False),
])
def test_the_agency_may_not_receive_payment(text: str, denied: bool) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, tzinfo=CDMX), creditor=BANK,
                                 content=ContactContent(text=text)), MxConfig())
    if denied:
        assert isinstance(verdict, Deny)
        assert [r.code for r in verdict.reasons] == ["agency_takes_payment"]
    else:
        assert isinstance(verdict, Allow)
