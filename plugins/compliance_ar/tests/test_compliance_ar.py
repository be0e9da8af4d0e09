"""Argentina pack: CABA hours (and the nationwide conservative default), provincial and
bridge holidays, CABA's debtor-only rule, judicial appearance, agent identification."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_ar
import msgspec
import pytest
from cartera_compliance_ar import ArConfig, ArgentinaPack
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

BA = ZoneInfo("America/Argentina/Buenos_Aires")
PACK = ArgentinaPack()
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=BA)


def contact(at: datetime, channel: str = "sms", sub: str | None = "AR-C",
            **fields: Any) -> PlannedContact:
    return PlannedContact(channel=channel, planned_at=at, debtor_country="AR",  # type: ignore[arg-type]
                          debtor_timezone="America/Argentina/Buenos_Aires",
                          debtor_subdivision=sub, **fields)


class TestArgentinaConformance(CompliancePackConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack(self) -> ArgentinaPack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Argentina/Buenos_Aires"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return ["AR-C", "AR-X", None]


class TestArgentinaCabaOnly(TestArgentinaConformance):
    closes_on_holidays = False

    @pytest.fixture
    def pack_config(self) -> ArConfig:
        return ArConfig(hours_nationwide=False)


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_ar, "register_compliance_packs")
    assert [p.country for p in packs] == ["AR"]


def test_caba_saturday_morning_only() -> None:
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=BA)
    verdict = PACK.judge(contact(saturday), ArConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 9, 8, 0, tzinfo=BA)
    assert "Ley 6171" in (verdict.reasons[0].rule_ref or "")


def test_outside_caba_the_window_is_a_configurable_reading() -> None:
    night = datetime(2026, 3, 3, 21, 0, tzinfo=BA)
    assert isinstance(PACK.judge(contact(night, sub="AR-X"), ArConfig()), Defer)
    assert isinstance(PACK.judge(contact(night, sub="AR-X"), ArConfig(hours_nationwide=False)),
                      Allow)
    assert isinstance(PACK.judge(contact(night), ArConfig(hours_nationwide=False)), Defer)


def test_bridge_holiday() -> None:
    # 2026-11-09: ad-hoc national holiday in the pinned calendar (compliance.md §2.5).
    days = {h.date for h in PACK.calendar(2026)}
    assert datetime(2026, 11, 9).date() in days
    verdict = PACK.judge(contact(datetime(2026, 11, 9, 10, tzinfo=BA)), ArConfig())
    assert isinstance(verdict, Defer)
    assert verdict.reasons[0].code == "public_holiday"


def test_in_caba_only_the_debtor() -> None:
    assert isinstance(PACK.judge(contact(TUESDAY, recipient_role="guarantor"), ArConfig()), Deny)
    assert isinstance(PACK.judge(contact(TUESDAY, sub="AR-X", recipient_role="guarantor"),
                                 ArConfig()), Allow)
    for role in ("family", "employer", "reference"):
        assert isinstance(PACK.judge(contact(TUESDAY, sub="AR-X", recipient_role=role),
                                     ArConfig()), Deny)


def test_no_appearance_of_a_judicial_claim() -> None:
    text = "CÉDULA JUDICIAL: el juzgado ordena el pago"
    verdict = PACK.judge(contact(TUESDAY, content=ContactContent(text=text)), ArConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].rule_ref == "Ley 24.240 art. 8 bis"


def test_caba_agency_notice_names_creditor_and_agent() -> None:
    creditor = Creditor(name="Tienda Sur SA", agency_name="Estudio Gómez")
    bare = ContactContent(text="Le informamos que su deuda está en gestión.", kind="notice")
    verdict = PACK.judge(contact(TUESDAY, creditor=creditor, content=bare), ArConfig())
    assert isinstance(verdict, Deny)
    assert {r.code for r in verdict.reasons} == {"creditor_name_missing",
                                                "agency_identification_missing"}
    full = ContactContent(text="Tienda Sur SA encargó a Estudio Gómez (Av. Corrientes 100, "
                               "011 4000 0000) la gestión de su deuda.", kind="notice")
    assert isinstance(PACK.judge(contact(TUESDAY, creditor=creditor, content=full), ArConfig()),
                      Allow)


@pytest.mark.parametrize("channel", ["voice", "email", "sms", "visit", "letter"])
def test_caba_forbids_work_contact_points(channel: str) -> None:
    verdict = PACK.judge(contact(TUESDAY, channel, contact_point_use="work"), ArConfig())
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["work_contact_point"]
    assert "Ley 6171" in (verdict.reasons[0].rule_ref or "")
    personal = PACK.judge(contact(TUESDAY, channel, contact_point_use="personal"), ArConfig())
    assert isinstance(personal, Allow)


def test_work_contact_points_outside_caba_follow_the_conservative_default() -> None:
    cordoba = contact(TUESDAY, "voice", sub="AR-X", contact_point_use="work")
    assert isinstance(PACK.judge(cordoba, ArConfig()), Deny)
    relaxed = msgspec.convert({"work_contact_ban_nationwide": False}, ArConfig)
    assert isinstance(PACK.judge(cordoba, relaxed), Allow)
    # In CABA the ban is the law's, whatever the tenant sets.
    caba = contact(TUESDAY, "voice", contact_point_use="work")
    assert isinstance(PACK.judge(caba, relaxed), Deny)


def test_charges_check_for_argentina() -> None:
    query = ChargeQuery(debtor_country="AR", today=date(2026, 3, 10), days_past_due=40)
    found = {f.kind: f for f in PACK.charges(query)}
    assert set(found) == {"collection_fee", "late_penalty", "moratory_interest",
                          "bureau_report"}
    assert found["collection_fee"].reason.code == "only_actual_expenses"
    assert "BCRA" in (found["collection_fee"].reason.rule_ref or "")
    assert not found["late_penalty"].allowed
    assert not found["moratory_interest"].allowed
    assert found["bureau_report"].allowed
    assert found["bureau_report"].reason.code == "no_bureau_notice_rule"
    other = {f.kind: f for f in PACK.charges(msgspec.structs.replace(
        query, creditor_kind="other"))}
    assert other["collection_fee"].reason.code == "fee_rules_unknown"
    listed = {r.code for r in PACK.rules()}
    assert all(f.reason.code in listed for f in [*found.values(), *other.values()])


def test_no_bureau_report_of_data_older_than_five_years() -> None:
    # In default since 2021-03-10: five years later, 2026-03-10, it may not be reported.
    old = ChargeQuery(debtor_country="AR", today=date(2026, 3, 10),
                      days_past_due=(date(2026, 3, 10) - date(2021, 3, 10)).days)
    bureau = {f.kind: f for f in PACK.charges(old)}["bureau_report"]
    assert (bureau.allowed, bureau.reason.code) == (False, "bureau_data_expired")
    day_before = msgspec.structs.replace(old, days_past_due=old.days_past_due - 1)
    assert {f.kind: f for f in PACK.charges(day_before)}["bureau_report"].allowed
    prescription = PACK.prescription(old)
    assert (prescription.time_barred_from, prescription.reason.code) == (
        None, "prescription_period_unknown")


def test_an_agent_domiciled_in_caba_brings_caba_law_to_every_debtor() -> None:
    cordoba = contact(TUESDAY, "voice", sub="AR-X", recipient_role="guarantor")
    assert isinstance(PACK.judge(cordoba, ArConfig()), Allow)
    caba_agent = ArConfig(agent_in_caba=True, work_contact_ban_nationwide=False)
    verdict = PACK.judge(cordoba, caba_agent)
    assert isinstance(verdict, Deny)
    assert [r.code for r in verdict.reasons] == ["third_party_forbidden"]
    work = contact(TUESDAY, "voice", sub="AR-X", contact_point_use="work")
    assert isinstance(PACK.judge(work, caba_agent), Deny)
