"""Argentina pack: CABA hours (and the nationwide conservative default), provincial and
bridge holidays, CABA's debtor-only rule, judicial appearance, agent identification."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_ar
import pytest
from cartera_compliance_ar import ArConfig, ArgentinaPack
from cartera_sdk import (
    Allow,
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
