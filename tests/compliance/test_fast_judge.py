"""The precomputed calendars give exactly the verdicts of the plain wall-clock reading.

For every shipped pack, every 15 minutes over a year that crosses each DST change the
packs' zones have (Chile's two a year, Mexico's former ones in 2022), holidays and
weekends: :meth:`RulePack.judge` (bisection on the precomputed calendar, the closed-form
earliest instant) against :meth:`RulePack.judge_reference` (each zone's local clock read
at the instant, the general candidate search), with the zone known and unknown, and with
frequency caps in play.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cartera_compliance_ar import ArgentinaPack
from cartera_compliance_br import BrazilPack
from cartera_compliance_cl import ChilePack
from cartera_compliance_co import ColombiaPack
from cartera_compliance_mx import MexicoPack
from cartera_compliance_pe import PeruPack
from cartera_sdk import Defer, PlannedContact, PriorContact
from cartera_sdk.compliancekit import CHUNK_SECONDS, HoursRule, RulePack

CASES = [
    (PeruPack, "America/Lima", None, 2026),
    (MexicoPack, "America/Mexico_City", None, 2022),  # DST abolished in October 2022
    (MexicoPack, "America/Tijuana", "MX-BCN", 2026),  # still changes with the US
    (ColombiaPack, "America/Bogota", "CO-DC", 2026),
    (ChilePack, "America/Santiago", "CL-RM", 2026),
    (ChilePack, "Pacific/Easter", None, 2026),
    (ArgentinaPack, "America/Argentina/Buenos_Aires", "AR-C", 2026),
    (BrazilPack, "America/Sao_Paulo", "BR-SP", 2018),  # Brazil still had DST then
    (BrazilPack, "America/Manaus", "BR-AM", 2026),
]
STEP = timedelta(minutes=15)


def _sweep(pack: RulePack, tz: str, sub: str | None, year: int, *, known: bool = True,
           every: timedelta = STEP, recent: bool = False) -> int:
    config = pack.Config()
    extra = {"authorized_channels": ["sms", "voice"]} if pack.country == "CO" else {}
    at = datetime(year, 1, 1, 0, 7, 30, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    checked = 0
    while at < end:
        channel = "voice" if checked % 3 == 0 else "sms"
        history = ([PriorContact(channel="sms", at=at - timedelta(hours=30), outcome="delivered"),
                    PriorContact(channel="voice", at=at - timedelta(days=2), outcome="answered")]
                   if recent else [])
        contact = PlannedContact(channel=channel, planned_at=at, debtor_country=pack.country,
                                 debtor_timezone=tz, debtor_subdivision=sub,
                                 timezone_known=known, recent_contacts=history,
                                 **extra)  # type: ignore[arg-type]
        fast, plain = pack.judge(contact, config), pack.judge_reference(contact, config)
        assert fast == plain, (pack.country, tz, at, fast, plain)
        if isinstance(fast, Defer):
            assert fast.until.utcoffset() == fast.until.astimezone(
                fast.until.tzinfo).utcoffset()
            assert fast.until.tzinfo is not None and str(fast.until.tzinfo) == tz
        checked += 1
        at += every
    return checked


@pytest.mark.parametrize(("pack_class", "tz", "sub", "year"), CASES,
                         ids=[f"{c[0].country}-{c[1]}-{c[3]}" for c in CASES])
def test_every_quarter_hour_of_a_year_matches_the_plain_reading(
        pack_class: type[RulePack], tz: str, sub: str | None, year: int) -> None:
    assert _sweep(pack_class(), tz, sub, year) == 4 * 24 * (366 if year % 4 == 0 else 365)


@pytest.mark.parametrize("pack_class", [ChilePack, BrazilPack, MexicoPack])
def test_unknown_zone_intersection_matches(pack_class: type[RulePack]) -> None:
    zone = pack_class.timezones[0]
    _sweep(pack_class(), zone, None, 2026, known=False, every=timedelta(minutes=47))


@pytest.mark.parametrize("pack_class", [ChilePack, ColombiaPack])
def test_caps_with_hours_match(pack_class: type[RulePack]) -> None:
    zone = pack_class.timezones[0]
    _sweep(pack_class(), zone, None, 2026, every=timedelta(minutes=53), recent=True)


def test_dst_edges_to_the_second() -> None:
    """Around Chile's changes (April and September 2026) every minute, with seconds."""
    pack, config = ChilePack(), ChilePack.Config()
    for day in (datetime(2026, 4, 4, 23, tzinfo=UTC), datetime(2026, 9, 5, 23, tzinfo=UTC)):
        for minutes in range(0, 36 * 60, 7):
            at = day + timedelta(minutes=minutes, seconds=minutes % 60)
            contact = PlannedContact(channel="voice", planned_at=at, debtor_country="CL",
                                     debtor_timezone="America/Santiago")
            assert pack.judge(contact, config) == pack.judge_reference(contact, config)


def test_chunk_edges_agree() -> None:
    """An instant on either side of a precomputed chunk's boundary."""
    pack = PeruPack()
    rule = pack.hours_rule(PlannedContact(channel="sms", planned_at=datetime.now(UTC),
                                          debtor_country="PE", debtor_timezone="America/Lima"),
                           pack.Config(), __import__("cartera_compliance_pe.pack").pack.HOURS)
    assert isinstance(rule, HoursRule)
    k = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp()) // CHUNK_SECONDS
    for offset in (-61, -1, 0, 1, 61):
        at = datetime.fromtimestamp(k * CHUNK_SECONDS + offset, UTC)
        assert rule.closed_reason(at) == rule.reference_closed_reason(at)


def test_judge_many_is_judge_in_order() -> None:
    pack, config = PeruPack(), PeruPack.Config()
    contacts = [PlannedContact(channel="sms", planned_at=datetime(2026, 12, 8, h, tzinfo=UTC),
                               debtor_country="PE", debtor_timezone="America/Lima")
                for h in range(24)]
    assert pack.judge_many(contacts, config) == [pack.judge(c, config) for c in contacts]
