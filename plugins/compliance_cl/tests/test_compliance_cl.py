"""Chile pack: Ley 19.496 art. 37 hours (America/Santiago DST), regional holidays, the
weekly call cap, two messages a week two days apart, litigation, judicial references."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import cartera_compliance_cl
import msgspec
import pytest
from cartera_compliance_cl import ChilePack, ClConfig
from cartera_sdk import (
    Allow,
    ChargeFinding,
    ChargeQuery,
    ContactContent,
    Defer,
    Deny,
    Money,
    PlannedContact,
    PriorContact,
    collect,
)
from cartera_sdk.testkit import CompliancePackConformance

SANTIAGO = ZoneInfo("America/Santiago")
PACK = ChilePack()
TUESDAY = datetime(2026, 3, 10, 10, 0, tzinfo=SANTIAGO)


def contact(at: datetime, channel: str = "sms", history: list[PriorContact] | None = None,
            tz: str = "America/Santiago", **fields: Any) -> PlannedContact:
    return PlannedContact(channel=channel, planned_at=at, debtor_country="CL",  # type: ignore[arg-type]
                          debtor_timezone=tz, recent_contacts=history or [], **fields)


def made(channel: str, at: datetime) -> PriorContact:
    return PriorContact(channel=channel, at=at)  # type: ignore[arg-type]


class TestChileConformance(CompliancePackConformance):
    closes_on_holidays = True

    @pytest.fixture
    def pack(self) -> ChilePack:
        return PACK

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "America/Santiago"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return [None, "CL-AP", "CL-RM"]

    @pytest.fixture
    def extra_contacts(self) -> list[PlannedContact]:
        history = [made("voice", TUESDAY - timedelta(days=2)),
                   made("sms", TUESDAY - timedelta(days=1))]
        return [contact(TUESDAY + timedelta(hours=h), ch, history)
                for h in (0, 26, 50, 75, 120) for ch in ("sms", "voice", "letter")]


class TestChileCallsOnly(TestChileConformance):
    @pytest.fixture
    def pack_config(self) -> ClConfig:
        return ClConfig(hours_apply_to=frozenset({"voice", "visit"}), message_spacing_days=2)


def test_the_plugin_registers_the_pack() -> None:
    packs = collect(cartera_compliance_cl, "register_compliance_packs")
    assert [p.country for p in packs] == ["CL"]


def test_saturday_allowed_sunday_closed() -> None:
    assert isinstance(PACK.judge(contact(datetime(2026, 3, 14, 19, 59, tzinfo=SANTIAGO), "voice"),
                                 ClConfig()), Allow)
    verdict = PACK.judge(contact(datetime(2026, 3, 15, 10, tzinfo=SANTIAGO), "voice"), ClConfig())
    assert isinstance(verdict, Defer)
    assert verdict.reasons[0].code == "closed_day"
    assert verdict.until == datetime(2026, 3, 16, 8, 0, tzinfo=SANTIAGO)


def test_dst_start_gives_the_right_wall_clock_time() -> None:
    # Sat 5 Sep 2026 at 20:30 (-04): next lawful is Monday 7 Sep 08:00, now at -03.
    verdict = PACK.judge(contact(datetime(2026, 9, 6, 0, 30, tzinfo=UTC), "voice"), ClConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 9, 7, 11, 0, tzinfo=UTC)
    assert verdict.until.astimezone(SANTIAGO).hour == 8


def test_dst_end_keeps_the_window_in_local_time() -> None:
    # Clocks go back at 24:00 on Sat 4 Apr 2026: Monday 6 Apr 08:00 is at -04 (12:00 UTC).
    verdict = PACK.judge(contact(datetime(2026, 4, 4, 23, 30, tzinfo=UTC), "voice"), ClConfig())
    assert isinstance(verdict, Defer)
    assert verdict.until == datetime(2026, 4, 6, 12, 0, tzinfo=UTC)


def test_regional_holiday_only_in_its_region() -> None:
    june7 = datetime(2026, 6, 8, 10, tzinfo=SANTIAGO) - timedelta(days=1)  # Sunday 7 June
    monday = datetime(2026, 6, 8, 10, tzinfo=SANTIAGO)
    assert june7.weekday() == 6
    assert isinstance(PACK.judge(contact(monday, "voice", debtor_subdivision="CL-AP"), ClConfig()),
                      Allow)
    chillan = datetime(2026, 8, 20, 10, tzinfo=SANTIAGO)  # Nacimiento de O'Higgins, Ñuble
    in_nuble = PACK.judge(contact(chillan, "voice", debtor_subdivision="CL-NB"), ClConfig())
    assert isinstance(in_nuble, Defer)
    assert in_nuble.reasons[0].code == "public_holiday"
    assert isinstance(PACK.judge(contact(chillan, "voice", debtor_subdivision="CL-RM"), ClConfig()),
                      Allow)


def test_one_call_or_visit_a_week() -> None:
    history = [made("visit", TUESDAY - timedelta(days=3))]
    verdict = PACK.judge(contact(TUESDAY, "voice", history), ClConfig())
    assert isinstance(verdict, Defer)
    assert verdict.reasons[0].code == "weekly_call_cap"
    assert verdict.until == datetime(2026, 3, 14, 10, 0, tzinfo=SANTIAGO)
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", history), ClConfig()), Allow)


def test_two_messages_a_week_two_days_apart() -> None:
    one = [made("email", TUESDAY - timedelta(days=1))]  # Monday
    spaced = PACK.judge(contact(TUESDAY, "sms", one), ClConfig())
    assert isinstance(spaced, Defer)
    assert spaced.reasons[0].code == "message_spacing"
    assert spaced.until == datetime(2026, 3, 12, 8, 0, tzinfo=SANTIAGO)  # Thursday 08:00
    two = [made("sms", TUESDAY - timedelta(days=6)), made("whatsapp", TUESDAY - timedelta(days=3))]
    capped = PACK.judge(contact(TUESDAY, "email", two), ClConfig())
    assert isinstance(capped, Defer)
    assert capped.reasons[0].code == "weekly_message_cap"
    assert capped.until == datetime(2026, 3, 11, 10, 0, tzinfo=SANTIAGO)


def test_the_tuesday_thursday_reading_is_the_tenants_floor() -> None:
    monday = [made("sms", TUESDAY - timedelta(days=2))]  # Sunday
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", monday), ClConfig()), Defer)
    assert isinstance(PACK.judge(contact(TUESDAY, "sms", monday),
                                 ClConfig(message_spacing_days=2)), Allow)
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:message_spacing_days"):
        msgspec.convert({"message_spacing_days": 1}, ClConfig)
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:calls_per_week"):
        msgspec.convert({"calls_per_week": 2}, ClConfig)


def test_contact_stops_in_litigation() -> None:
    verdict = PACK.judge(contact(TUESDAY, in_litigation=True), ClConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].code == "in_litigation"


@pytest.mark.parametrize(("text", "code"), [
    ("Evite la demanda: iniciaremos acciones judiciales", "court_document_lookalike"),
    ("Su deuda será informada a DICOM", "bureau_threat"),
])
def test_judicial_references_and_bureau_threats(text: str, code: str) -> None:
    verdict = PACK.judge(contact(TUESDAY, content=ContactContent(text=text)), ClConfig())
    assert isinstance(verdict, Deny)
    assert verdict.reasons[0].code == code


def test_employer_and_references_are_denied() -> None:
    for role in ("employer", "reference", "family"):
        assert isinstance(PACK.judge(contact(TUESDAY, recipient_role=role), ClConfig()), Deny)


def test_no_collection_fee_in_the_first_20_days() -> None:
    query = ChargeQuery(debtor_country="CL", today=date(2026, 3, 10), days_past_due=15,
                        overdue=Money.of("100000", "CLP"), uf_value=Decimal("40000"))
    finding = _fee(query)
    assert (finding.kind, finding.allowed) == ("collection_fee", False)
    assert finding.lawful_from == date(2026, 3, 16)  # day 21 of delay
    assert finding.reason.rule_ref == "Ley 19.496 art. 37"


@pytest.mark.parametrize(("overdue_uf", "cap"), [
    (5, 18_000),  # 9 % of 200,000
    (10, 36_000),
    (100, 36_000 + 96_000 + 60_000),  # 9 % to 10 UF, 6 % to 50 UF, 3 % above
])
def test_collection_fee_cap_by_uf_band(overdue_uf: int, cap: int) -> None:
    query = ChargeQuery(debtor_country="CL", today=date(2026, 3, 10), days_past_due=45,
                        overdue=Money.of(str(overdue_uf * 40_000), "CLP"),
                        uf_value=Decimal("40000"))
    finding = _fee(query)
    assert finding.allowed
    assert finding.max_amount == Money.of(str(cap), "CLP")
    no_uf = msgspec.structs.replace(query, uf_value=None)
    assert not _fee(no_uf).allowed


def _fee(query: ChargeQuery) -> ChargeFinding:
    (finding,) = [f for f in PACK.charges(query) if f.kind == "collection_fee"]
    return finding


def test_bureau_report_and_prescription_state_what_the_law_file_lacks() -> None:
    query = ChargeQuery(debtor_country="CL", today=date(2026, 3, 10), days_past_due=45)
    (bureau,) = [f for f in PACK.charges(query) if f.kind == "bureau_report"]
    assert bureau.allowed and bureau.reason.code == "bureau_notice_not_found"
    found = PACK.prescription(query)
    assert (found.time_barred_from, found.reason.code) == (None, "prescription_period_unknown")
