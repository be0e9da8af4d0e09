"""Brazil pack: state windows (SP, AL calls and SMS, RJ), the nationwide default, state
holidays, CDC art. 42-A identification, threats and third parties."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_br
import msgspec
import pytest
from cartera_compliance_br import BrazilPack, BrConfig
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

SP = ZoneInfo("America/Sao_Paulo")
PACK = BrazilPack()
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=SP)
LOJA = Creditor(name="Loja Azul Ltda", tax_id="12.345.678/0001-90",
                address="Rua Augusta 100, São Paulo")
IDENTIFIED = ("Loja Azul Ltda, CNPJ 12.345.678/0001-90, Rua Augusta 100, São Paulo: sua "
              "parcela de R$ 120 vence amanhã.")


def contact(at: datetime, channel: str = "sms", sub: str | None = "BR-SP",
            **fields: Any) -> PlannedContact:
    return PlannedContact(channel=channel, planned_at=at, debtor_country="BR",  # type: ignore[arg-type]
                          debtor_timezone="America/Sao_Paulo", debtor_subdivision=sub, **fields)


class TestBrazilConformance(CompliancePackConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack(self) -> BrazilPack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Sao_Paulo"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return ["BR-SP", "BR-RJ", "BR-AL", "BR-MG"]


class TestBrazilStateLawsOnly(TestBrazilConformance):
    closes_on_holidays = False

    @pytest.fixture
    def pack_config(self) -> BrConfig:
        return BrConfig(hours_apply_to=frozenset({"voice"}), hours_nationwide=False)


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_br, "register_compliance_packs")
    assert [p.country for p in packs] == ["BR"]


def test_sao_paulo_saturday_until_fourteen() -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 7, 14, 0, tzinfo=SP), "voice"), BrConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 9, 8, 0, tzinfo=SP)


def test_rio_weekdays_nine_to_nineteen() -> None:
    verdict = PACK.judge(contact(datetime(2026, 3, 3, 8, 30, tzinfo=SP), "voice", "BR-RJ"),
                         BrConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 3, 9, 0, tzinfo=SP)


def test_alagoas_sms_is_always_timed() -> None:
    night = datetime(2026, 3, 3, 21, 0, tzinfo=SP)
    calls_only = BrConfig(hours_apply_to=frozenset({"voice"}), hours_nationwide=False)
    assert isinstance(PACK.judge(contact(night, "sms", "BR-AL"), calls_only), Defer)
    assert isinstance(PACK.judge(contact(night, "sms", "BR-SP"), calls_only), Allow)
    assert isinstance(PACK.judge(contact(night, "voice", "BR-MG"), calls_only), Allow)
    assert isinstance(PACK.judge(contact(night, "voice", "BR-MG"), BrConfig()), Defer)


def test_state_holiday() -> None:
    # 9 July: Revolução Constitucionalista, a São Paulo state holiday.
    at = datetime(2026, 7, 9, 10, tzinfo=SP)
    assert PACK.judge(contact(at, "voice"), BrConfig()).reasons[0].code == "public_holiday"
    assert isinstance(PACK.judge(contact(at, "voice", "BR-MG"), BrConfig()), Allow)


def test_written_collection_carries_name_address_and_cnpj() -> None:
    ok = contact(TUESDAY, creditor=LOJA, content=ContactContent(text=IDENTIFIED))
    assert isinstance(PACK.judge(ok, BrConfig()), Allow)
    bare = msgspec.structs.replace(ok, content=ContactContent(text="Sua parcela vence amanhã."))
    verdict = PACK.judge(bare, BrConfig())
    assert isinstance(verdict, Deny)
    (reason,) = verdict.reasons
    assert reason.code == "creditor_identification_missing"
    assert reason.rule_ref == "CDC (Lei 8.078/1990) art. 42-A"
    assert all(gap in reason.message for gap in ("name", "address", "CPF/CNPJ"))
    unknown = msgspec.structs.replace(ok, creditor=None)
    assert isinstance(PACK.judge(unknown, BrConfig()), Deny)
    call = msgspec.structs.replace(bare, channel="voice")
    assert isinstance(PACK.judge(call, BrConfig()), Allow)


@pytest.mark.parametrize("text", ["Oficial de justiça irá à sua casa", "Vamos expor você",
                                  "Avisaremos sua família e seu empregador"])
def test_threats_and_fake_court_papers(text: str) -> None:
    verdict = PACK.judge(contact(TUESDAY, "voice", content=ContactContent(text=text)), BrConfig())
    assert isinstance(verdict, Deny)


def test_third_parties() -> None:
    assert isinstance(PACK.judge(contact(TUESDAY, "voice", recipient_role="co_debtor"),
                                 BrConfig()), Allow)
    assert isinstance(PACK.judge(contact(TUESDAY, "voice", recipient_role="family"),
                                 BrConfig()), Deny)


def test_calls_cannot_be_untimed() -> None:
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:hours_apply_to"):
        msgspec.convert({"hours_apply_to": ["sms"]}, BrConfig)


def test_negativacao_needs_prior_written_notice() -> None:
    base = ChargeQuery(debtor_country="BR", today=date(2026, 3, 25), days_past_due=60,
                       notices=[date(2026, 3, 20)])
    assert not PACK.charges(base)[0].allowed  # not written
    (finding,) = PACK.charges(msgspec.structs.replace(base, written_notice=True))
    assert (finding.allowed, finding.lawful_from) == (True, date(2026, 3, 21))


def test_no_negativacao_of_a_default_older_than_five_years() -> None:
    old = ChargeQuery(debtor_country="BR", today=date(2026, 3, 25), days_past_due=1827,
                      notices=[date(2026, 3, 20)], written_notice=True)
    (finding,) = PACK.charges(old)
    assert (finding.allowed, finding.reason.code) == (False, "bureau_five_year_limit")
    recent = msgspec.structs.replace(old, days_past_due=1825)  # since 2021-03-26
    assert PACK.charges(recent)[0].reason.code == "bureau_written_notice"
    found = PACK.prescription(old)
    assert (found.time_barred_from, found.reason.code) == (None, "prescription_period_unknown")
