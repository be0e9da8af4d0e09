"""Colombia pack: Ley 2300 de 2023 hours, Emiliani holidays, authorised channels, visits,
references, the daily cap and the weekly channel lock after a direct contact."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_co
import msgspec
import pytest
from cartera_compliance_co import CoConfig, ColombiaPack
from cartera_sdk import (
    Allow,
    ChargeFinding,
    ChargeQuery,
    ContactContent,
    Defer,
    Deny,
    PlannedContact,
    PriorContact,
    collect,
)
from cartera_sdk.testkit import CompliancePackConformance

BOGOTA = ZoneInfo("America/Bogota")
PACK = ColombiaPack()
ALL = ["sms", "whatsapp", "email", "voice", "letter", "visit"]


def contact(at: datetime, channel: str = "sms", history: list[PriorContact] | None = None,
            **fields: Any) -> PlannedContact:
    fields.setdefault("authorized_channels", ALL)
    return PlannedContact(channel=channel, planned_at=at, debtor_country="CO",  # type: ignore[arg-type]
                          debtor_timezone="America/Bogota", recent_contacts=history or [],
                          **fields)


def made(channel: str, at: datetime, outcome: str | None = None) -> PriorContact:
    return PriorContact(channel=channel, at=at, outcome=outcome)  # type: ignore[arg-type]


TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=BOGOTA)


class TestColombiaConformance(CompliancePackConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack(self) -> ColombiaPack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Bogota"

    @pytest.fixture
    def contact_defaults(self) -> dict[str, Any]:
        return {"authorized_channels": ALL}

    @pytest.fixture
    def extra_contacts(self) -> list[PlannedContact]:
        answered = [made("voice", TUESDAY - timedelta(hours=1), "answered")]
        return [contact(TUESDAY + timedelta(hours=h), ch, answered)
                for h in (0, 3, 30, 80) for ch in ("sms", "voice", "email")]


class TestColombiaRolling(TestColombiaConformance):
    @pytest.fixture
    def pack_config(self) -> CoConfig:
        return CoConfig(week="rolling", direct_contact="any_attempt")


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_co, "register_compliance_packs")
    assert [p.country for p in packs] == ["CO"]


def test_saturday_window_and_sunday_closed() -> None:
    saturday = datetime(2026, 3, 7, 15, 0, tzinfo=BOGOTA)
    verdict = PACK.judge(contact(saturday), CoConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 9, 7, 0, tzinfo=BOGOTA)  # Sunday skipped
    assert verdict.reasons[0].rule_ref == "Ley 2300 de 2023 art. 3"
    assert isinstance(PACK.judge(contact(saturday - timedelta(minutes=1)), CoConfig()), Allow)


def test_emiliani_moved_holiday() -> None:
    # Epiphany (6 Jan) moves to Monday 12 January 2026 under Ley 51 de 1983.
    assert isinstance(PACK.judge(contact(datetime(2026, 1, 6, 10, tzinfo=BOGOTA)), CoConfig()),
                      Allow)
    verdict = PACK.judge(contact(datetime(2026, 1, 12, 10, tzinfo=BOGOTA)), CoConfig())
    assert isinstance(verdict, Defer)
    assert verdict.reasons[0].code == "public_holiday"
    assert verdict.until == datetime(2026, 1, 13, 7, 0, tzinfo=BOGOTA)


def test_only_authorised_channels() -> None:
    unknown = PACK.judge(contact(TUESDAY, authorized_channels=None), CoConfig())
    assert isinstance(unknown, Deny)
    assert unknown.reasons[0].code == "channel_not_authorised"
    assert isinstance(PACK.judge(contact(TUESDAY, authorized_channels=["email"]), CoConfig()),
                      Deny)


def test_visits_and_references_are_denied() -> None:
    assert PACK.judge(contact(TUESDAY, "visit"), CoConfig()).reasons[0].code == "visit_forbidden"
    for role in ("reference", "family", "employer"):
        verdict = PACK.judge(contact(TUESDAY, recipient_role=role), CoConfig())
        assert isinstance(verdict, Deny)
        assert verdict.reasons[0].rule_ref == "Ley 2300 de 2023 art. 4"
    assert isinstance(PACK.judge(contact(TUESDAY, recipient_role="guarantor"), CoConfig()), Allow)


def test_one_contact_a_day_counting_contacts_made() -> None:
    history = [made("sms", TUESDAY - timedelta(hours=2), "failed")]
    verdict = PACK.judge(contact(TUESDAY, "sms", history), CoConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 3, 4, 7, 0, tzinfo=BOGOTA)
    assert [r.code for r in verdict.reasons] == ["daily_contact_cap"]
    # The literal reading caps only after a direct contact: a failed SMS is not one.
    literal = CoConfig(daily_cap_before_direct_contact=False)
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", history), literal), Allow)


def test_after_a_direct_contact_no_other_channel_that_week() -> None:
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=BOGOTA)
    history = [made("voice", monday, "answered")]
    other = PACK.judge(contact(TUESDAY, "whatsapp", history), CoConfig())
    assert isinstance(other, Defer)
    assert "weekly_channel_lock" in [r.code for r in other.reasons]
    assert other.until == datetime(2026, 3, 9, 7, 0, tzinfo=BOGOTA)  # next ISO week
    assert isinstance(PACK.judge(contact(TUESDAY, "voice", history), CoConfig()), Allow)
    rolling = PACK.judge(contact(TUESDAY, "whatsapp", history), CoConfig(week="rolling"))
    assert isinstance(rolling, Defer)
    assert rolling.until == datetime(2026, 3, 9, 9, 0, tzinfo=BOGOTA)


def test_without_a_direct_contact_channels_may_change_on_another_day() -> None:
    history = [made("voice", datetime(2026, 3, 2, 9, tzinfo=BOGOTA), "no_answer")]
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", history), CoConfig()), Allow)
    strict = CoConfig(direct_contact="any_attempt")
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", history), strict), Defer)


def test_never_ask_why_the_debtor_did_not_pay() -> None:
    ask = ContactContent(text="¿Por qué no ha pagado su cuota? Cuéntenos el motivo del atraso.")
    verdict = PACK.judge(contact(TUESDAY, content=ask), CoConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].code == "asks_reason_for_default"


def test_a_looser_daily_cap_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:contacts_per_day"):
        msgspec.convert({"contacts_per_day": 2}, CoConfig)


def _bureau(query: ChargeQuery) -> ChargeFinding:
    (finding,) = [f for f in PACK.charges(query) if f.kind == "bureau_report"]
    return finding


def test_bureau_report_twenty_days_after_the_last_notice() -> None:
    base = ChargeQuery(debtor_country="CO", today=date(2026, 3, 25), days_past_due=60)
    assert not _bureau(base).allowed
    noticed = msgspec.structs.replace(base, notices=[date(2026, 3, 1)])
    finding = _bureau(noticed)
    assert (finding.allowed, finding.lawful_from) == (True, date(2026, 3, 21))
    small = msgspec.structs.replace(noticed, small_debt=True)
    assert not _bureau(small).allowed  # two notices on different days needed
    two = msgspec.structs.replace(small, notices=[date(2026, 3, 1), date(2026, 3, 10)])
    assert _bureau(two).lawful_from == date(2026, 3, 30)


def test_no_bureau_report_more_than_18_months_after_default() -> None:
    # In default since 2024-09-24; 18 months later is 2026-03-24.
    late = ChargeQuery(debtor_country="CO", today=date(2026, 3, 25), days_past_due=547,
                       notices=[date(2026, 3, 1)])
    finding = _bureau(late)
    assert (finding.allowed, finding.reason.code) == (False, "bureau_report_too_late")
    in_time = msgspec.structs.replace(late, today=date(2026, 3, 24), days_past_due=546)
    assert _bureau(in_time).reason.code == "bureau_notice_required"


def test_collection_fee_and_prescription() -> None:
    query = ChargeQuery(debtor_country="CO", today=date(2026, 3, 25), days_past_due=60)
    (fee,) = [f for f in PACK.charges(query) if f.kind == "collection_fee"]
    assert (fee.allowed, fee.reason.code) == (False, "collection_fee_conditions")
    assert fee.reason.rule_ref == "SFC Circular Externa 048 de 2008"
    found = PACK.prescription(query)
    assert (found.time_barred_from, found.reason.code) == (None, "prescription_period_unknown")
