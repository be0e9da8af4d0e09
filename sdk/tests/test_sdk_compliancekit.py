"""The compliance building blocks: local time across DST, windows, holidays, the earliest
lawful instant, caps, content patterns and configs that only tighten."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from cartera_sdk import InvalidContact, PlannedContact, PriorContact, Reason
from cartera_sdk.compliancekit import (
    COURT_DOCUMENT_ES,
    AtMost,
    Floor,
    HolidayCalendar,
    HoursRule,
    NotBefore,
    PackConfig,
    WeeklyHours,
    calendar_cap,
    earliest_lawful,
    findings,
    mentions,
    rolling_cap,
    spacing,
    to_instant,
    wall_openings,
)
from cartera_sdk.compliancekit import Reasons as _Reasons

SANTIAGO = ZoneInfo("America/Santiago")
R = Reason(code="x", message="x")
REASONS = _Reasons(R, Reason(code="day", message="d"), Reason(code="hol", message="h"))


def test_a_nonexistent_wall_time_maps_to_the_end_of_the_gap() -> None:
    # 2026-09-06: Santiago's clocks jump from 24:00 (-04) to 01:00 (-03).
    for wall in (time(0), time(0, 30)):
        got = to_instant(date(2026, 9, 6), wall, SANTIAGO)
        assert got.astimezone(UTC) == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    assert to_instant(date(2026, 9, 6), time(1), SANTIAGO).astimezone(UTC) == \
        datetime(2026, 9, 6, 4, 0, tzinfo=UTC)


def test_an_ambiguous_wall_time_maps_to_the_earlier_instant_and_opens_twice() -> None:
    # 2026-04-04 at 24:00 (-03) Santiago goes back to 23:00 (-04): 23:30 happens twice.
    first, second = wall_openings(date(2026, 4, 4), time(23, 30), SANTIAGO)
    assert first.astimezone(UTC) == datetime(2026, 4, 5, 2, 30, tzinfo=UTC)
    assert second.astimezone(UTC) == datetime(2026, 4, 5, 3, 30, tzinfo=UTC)
    assert to_instant(date(2026, 4, 4), time(23, 30), SANTIAGO) == first


def test_holidays_national_and_subdivision() -> None:
    arica = HolidayCalendar("CL", "CL-AP")
    assert arica.is_holiday(date(2026, 6, 7))  # Asalto y Toma del Morro de Arica
    assert not HolidayCalendar("CL", "CL-RM").is_holiday(date(2026, 6, 7))
    assert HolidayCalendar("CO").is_holiday(date(2026, 1, 12))  # Epiphany moved (Emiliani)
    assert not HolidayCalendar("CO").is_holiday(date(2026, 1, 6))
    assert HolidayCalendar("PE", extra=frozenset({date(2026, 3, 3)})).is_holiday(date(2026, 3, 3))
    regional = [h for h in arica.holidays(2026) if h.subdivision]
    assert regional
    assert all(h.subdivision == "CL-AP" for h in regional)


def _hours_rule(zones: tuple[str, ...]) -> HoursRule:
    hours = WeeklyHours.of({range(5): ("08:00", "20:00")})
    return HoursRule(hours, HolidayCalendar("MX"), tuple(ZoneInfo(z) for z in zones), REASONS)


def test_earliest_lawful_is_the_next_window_start_across_a_weekend() -> None:
    rule = _hours_rule(("America/Mexico_City",))
    friday_night = datetime(2026, 3, 6, 21, 0, tzinfo=ZoneInfo("America/Mexico_City"))
    got = earliest_lawful(friday_night, [rule])
    assert got == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # Monday 08:00 -06
    assert rule.closed_reason(friday_night) is R


def test_unknown_zone_among_several_uses_the_intersection() -> None:
    rule = _hours_rule(("America/Cancun", "America/Tijuana"))  # UTC-5 and UTC-8 (Jan)
    at = datetime(2026, 1, 12, 13, 30, tzinfo=UTC)  # 08:30 Cancún, 05:30 Tijuana
    assert rule.closed_reason(at) is not None
    assert earliest_lawful(at, [rule]) == datetime(2026, 1, 12, 16, 0, tzinfo=UTC)


def test_a_cap_release_combines_with_the_window() -> None:
    rule = _hours_rule(("America/Mexico_City",))
    at = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    cap = NotBefore(instant=datetime(2026, 3, 10, 3, 0, tzinfo=UTC), reason=R)
    assert earliest_lawful(at, [rule, cap]) == datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def _contact(at: datetime, history: list[tuple[str, datetime]]) -> PlannedContact:
    return PlannedContact(channel="sms", planned_at=at, debtor_country="CL",
                          debtor_timezone="America/Santiago",
                          recent_contacts=[PriorContact(channel=ch, at=t)  # type: ignore[arg-type]
                                           for ch, t in history])


def test_caps_count_only_contacts_made_before_the_one_judged() -> None:
    at = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    earlier = at - timedelta(hours=3)
    daily = calendar_cap(_contact(at, [("sms", earlier)]), SANTIAGO, 1, "day", R)
    assert daily is not None
    assert daily.instant == datetime(2026, 3, 11, 0, 0, tzinfo=SANTIAGO)
    assert calendar_cap(_contact(at, [("sms", at)]), SANTIAGO, 1, "day", R) is None
    assert calendar_cap(_contact(at, []), SANTIAGO, 1, "day", R) is None


def test_rolling_cap_releases_when_the_oldest_contact_leaves_the_window() -> None:
    at = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    history = [("sms", at - timedelta(days=5)), ("sms", at - timedelta(days=1))]
    cap = rolling_cap(_contact(at, history), 2, timedelta(days=7), R)
    assert cap is not None
    assert cap.instant == at + timedelta(days=2)
    assert rolling_cap(_contact(at + timedelta(days=2), history), 2, timedelta(days=7), R) is None


def test_spacing_counts_local_calendar_days() -> None:
    tuesday = datetime(2026, 3, 10, 12, 0, tzinfo=SANTIAGO)
    thursday = datetime(2026, 3, 12, 9, 0, tzinfo=SANTIAGO)
    gap = spacing(_contact(thursday, [("sms", tuesday)]), SANTIAGO, 3, R)
    assert gap is not None
    assert gap.instant == datetime(2026, 3, 13, 0, 0, tzinfo=SANTIAGO)
    assert spacing(_contact(thursday, [("sms", tuesday)]), SANTIAGO, 2, R) is None


class StrictConfig(PackConfig, frozen=True, kw_only=True):
    calls_per_week: int = 1
    channels: frozenset[str] = frozenset({"voice", "visit", "sms"})
    legal_limits = (AtMost("calls_per_week", 1, "art. 37"),
                    Floor("channels", frozenset({"voice", "visit"}), "art. 62.b"))


def test_a_config_may_tighten_but_never_loosen() -> None:
    assert msgspec.convert({"calls_per_week": 0, "channels": ["voice", "visit"]}, StrictConfig)
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:calls_per_week"):
        msgspec.convert({"calls_per_week": 2}, StrictConfig)
    with pytest.raises(msgspec.ValidationError, match="looser_than_law:channels"):
        msgspec.convert({"channels": ["voice"]}, StrictConfig)
    with pytest.raises(ValueError, match="calls_per_week"):
        StrictConfig(calls_per_week=3)


def test_narrowing_knobs_only_cut_windows() -> None:
    hours = WeeklyHours.of({range(6): ("08:00", "20:00")})
    narrowed = hours.narrowed(PackConfig(not_before=time(9), not_after=time(18),
                                         closed_weekdays=frozenset({5})))
    assert narrowed.days == {wd: ((540, 1080),) for wd in range(5)}
    assert hours.narrowed(PackConfig(not_before=time(6))).days == hours.days


def test_content_patterns_ignore_case_and_accents() -> None:
    assert findings("NOTIFICACIÓN JUDICIAL: Juzgado 3", COURT_DOCUMENT_ES)
    assert not findings("Recuerde su cuota de marzo", COURT_DOCUMENT_ES)
    assert mentions("CNPJ 12.345.678/0001-90", "12345678000190")
    assert mentions("Banco Ñandú S.A.", "banco nandu")


def test_bad_contacts_raise_a_clear_error() -> None:
    with pytest.raises(InvalidContact, match="planned_at"):
        PlannedContact(channel="sms", planned_at=datetime(2026, 1, 1), debtor_country="PE",
                       debtor_timezone="America/Lima")
    with pytest.raises(InvalidContact, match="debtor_timezone") as caught:
        PlannedContact(channel="sms", planned_at=datetime(2026, 1, 1, tzinfo=UTC),
                       debtor_country="PE", debtor_timezone="America/Atlantis")
    assert caught.value.field == "debtor_timezone"


def test_the_memoised_search_answers_like_the_full_one() -> None:
    from cartera_sdk.compliancekit import _search

    rule = _hours_rule(("America/Tijuana",))
    start = datetime(2026, 3, 6, 0, 0, 17, tzinfo=UTC)  # seconds on purpose; DST on 8 March
    for step in range(0, 5 * 24 * 60, 7):
        at = start + timedelta(minutes=step)
        assert earliest_lawful(at, [rule]) == _search(at, [rule]), at
