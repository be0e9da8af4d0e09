"""Peru pack: Ley 29571 art. 62.b hours, holidays, third parties, content, config floor."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_pe
import msgspec
import pytest
from cartera_compliance_pe import PeConfig, PeruPack
from cartera_sdk import Allow, ChargeQuery, ContactContent, Defer, Deny, PlannedContact, collect
from cartera_sdk.testkit import CompliancePackConformance

LIMA = ZoneInfo("America/Lima")
PACK = PeruPack()


def contact(at: datetime, channel: str = "sms", **fields: Any) -> PlannedContact:
    return PlannedContact(channel=channel, planned_at=at, debtor_country="PE",  # type: ignore[arg-type]
                          debtor_timezone="America/Lima", **fields)


class TestPeruConformance(CompliancePackConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack(self) -> PeruPack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Lima"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return [None, "PE-LIM"]


class TestPeruLiteralReading(TestPeruConformance):
    @pytest.fixture
    def pack_config(self) -> PeConfig:
        return PeConfig(hours_apply_to=frozenset({"voice", "visit"}))


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_pe, "register_compliance_packs")
    assert [p.country for p in packs] == ["PE"]


def test_sunday_night_sms_is_deferred_to_monday_seven() -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 1, 21, 30, tzinfo=LIMA)), PeConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 2, 7, 0, tzinfo=LIMA)
    assert [r.code for r in verdict.reasons] == ["closed_day"]
    assert verdict.reasons[0].rule_ref == "Ley 29571 art. 62.b"
    assert verdict.calendar_version and verdict.pack_version


def test_immaculate_conception_defers_past_ayacucho_day() -> None:
    verdict = PACK.judge(contact(datetime(2026, 12, 8, 10, 0, tzinfo=LIMA)), PeConfig())
    assert isinstance(verdict, Defer)
    assert verdict.reasons[0].code == "public_holiday"
    assert verdict.until == datetime(2026, 12, 10, 7, 0, tzinfo=LIMA)  # 9 Dec is a holiday too


def test_friday_at_the_closing_minute_waits_for_monday() -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 6, 20, 0, tzinfo=LIMA), "voice"), PeConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 9, 7, 0, tzinfo=LIMA)
    assert isinstance(PACK.judge(contact(datetime(2026, 3, 6, 19, 59, tzinfo=LIMA), "voice"),
                                 PeConfig()), Allow)


def test_messages_follow_the_window_by_default_but_a_tenant_may_take_the_literal_reading(
) -> None:
    night = contact(datetime(2026, 3, 3, 22, 0, tzinfo=LIMA), "whatsapp")
    assert isinstance(PACK.judge(night, PeConfig()), Defer)
    literal = PeConfig(hours_apply_to=frozenset({"voice", "visit"}))
    assert isinstance(PACK.judge(night, literal), Allow)
    assert isinstance(PACK.judge(msgspec.structs.replace(night, channel="voice"), literal), Defer)


def test_a_config_below_the_law_is_refused_with_the_field_named() -> None:
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:hours_apply_to"):
        msgspec.convert({"hours_apply_to": ["visit", "sms"]}, PeConfig)


@pytest.mark.parametrize(("role", "allowed"), [
    ("debtor", True), ("guarantor", True), ("co_debtor", True), ("reference", False),
    ("family", False), ("employer", False), ("other_third_party", False)])
def test_third_parties(role: str, allowed: bool) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, 0, tzinfo=LIMA),
                                 recipient_role=role), PeConfig())
    assert isinstance(verdict, Allow) is allowed
    if not allowed:
        assert isinstance(verdict, Deny)
        assert verdict.reasons[0].code == "third_party_forbidden"


@pytest.mark.parametrize(("text", "code"), [
    ("NOTIFICACIÓN JUDICIAL - Expediente N° 123, Juzgado de Paz", "court_document_lookalike"),
    ("Si no paga hoy informaremos a su empleador", "threat"),
])
def test_content_that_the_law_forbids_is_denied(text: str, code: str) -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 10, 0, tzinfo=LIMA),
                                 content=ContactContent(text=text, kind="notice")), PeConfig())
    assert isinstance(verdict, Deny)
    assert code in [r.code for r in verdict.reasons]
    assert all(r.rule_ref for r in verdict.reasons)


def test_a_plain_reminder_is_allowed() -> None:
    text = "Hola Ana, le recordamos que su cuota de S/ 150 vence el 5 de marzo."
    assert isinstance(PACK.judge(contact(datetime(2026, 3, 3, 10, 0, tzinfo=LIMA),
                                         content=ContactContent(text=text)), PeConfig()), Allow)


def test_supervised_lenders_add_no_collection_fee_only_moratory_interest() -> None:
    query = ChargeQuery(debtor_country="PE", today=date(2026, 3, 10), days_past_due=40)
    found = {f.kind: f for f in PACK.charges(query)}
    assert not found["collection_fee"].allowed
    assert not found["late_penalty"].allowed
    assert found["collection_fee"].reason.rule_ref.startswith("Ley 28587 art. 6")
    # The BCRP figure is not in the law file: until the tenant configures it, moratory
    # interest is not reported lawful (the conservative default).
    assert not found["moratory_interest"].allowed
    assert found["moratory_interest"].reason.code == "moratory_rate_unknown"
    config = msgspec.convert({"moratory_rate_cap_percent": "14.5"}, PeConfig)
    capped = {f.kind: f for f in PACK.charges(query, config)}
    assert capped["moratory_interest"].allowed
    assert capped["moratory_interest"].reason.code == "moratory_interest_only"
    assert "14.5 %" in capped["moratory_interest"].reason.message
    assert not capped["collection_fee"].allowed


def test_a_negative_rate_cap_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="moratory_rate_cap_percent"):
        msgspec.convert({"moratory_rate_cap_percent": "-1"}, PeConfig)


def test_other_creditors_get_no_fee_or_interest_reported_lawful() -> None:
    query = ChargeQuery(debtor_country="PE", today=date(2026, 3, 10), days_past_due=40,
                        creditor_kind="other")
    found = {f.kind: f for f in PACK.charges(query)}
    assert {k for k, f in found.items() if not f.allowed} == {
        "collection_fee", "late_penalty", "moratory_interest"}
    assert {f.reason.code for k, f in found.items() if k != "bureau_report"} == {
        "fee_rules_unknown"}


def test_bureau_report_has_no_notice_period_and_prescription_has_no_date() -> None:
    query = ChargeQuery(debtor_country="PE", today=date(2026, 3, 10), days_past_due=40)
    bureau = {f.kind: f for f in PACK.charges(query)}["bureau_report"]
    assert bureau.allowed and bureau.reason.code == "bureau_notice_not_found"
    found = PACK.prescription(query)
    assert found.time_barred_from is None
    assert found.verification == "unverified"
    assert found.reason.code == "prescription_period_unknown"
    codes = {r.code: r for r in PACK.rules()}
    assert codes["prescription_period_unknown"].verification == "unverified"


@pytest.mark.parametrize("channel", ["visit", "letter"])
def test_a_visit_or_letter_to_an_address_found_elsewhere_is_denied(channel: str) -> None:
    at = datetime(2026, 3, 3, 10, 0, tzinfo=LIMA)
    verdict = PACK.judge(contact(at, channel, contact_origin="found"), PeConfig())
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["unauthorised_address"]
    assert isinstance(PACK.judge(contact(at, channel, contact_origin="debtor_provided"),
                                 PeConfig()), Allow)
    # A phone number found elsewhere is not an address: 62.f's guide speaks of domicilios.
    assert isinstance(PACK.judge(contact(at, "sms", contact_origin="found"), PeConfig()), Allow)
