"""Bad input to a shipped pack through the SDK: a clear exception naming the field, never a
silent allow (unknown zone, a zone outside the country even when only guessed, a
subdivision that does not exist or is another country's, naive instants)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cartera_compliance_br import BrazilPack
from cartera_compliance_pe import PeruPack
from cartera_sdk import InvalidContact, PlannedContact, PriorContact
from cartera_sdk.compliance import UnknownTimeZone

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _contact(**over: Any) -> PlannedContact:
    fields: dict[str, Any] = {"channel": "sms", "planned_at": AT, "debtor_country": "PE",
                              "debtor_timezone": "America/Lima"}
    fields.update(over)
    return PlannedContact(**fields)


@pytest.mark.parametrize(("over", "field"), [
    ({"debtor_timezone": "Europe/Madrid"}, "debtor_timezone"),
    ({"debtor_timezone": "Europe/Madrid", "timezone_known": False}, "debtor_timezone"),
    ({"debtor_subdivision": "PE-XXX"}, "debtor_subdivision"),
    ({"debtor_subdivision": "BR-SP"}, "debtor_subdivision"),
    ({"debtor_country": "CL"}, "debtor_country"),
])
def test_a_pack_refuses_what_it_cannot_judge(over: dict[str, Any], field: str) -> None:
    pack = PeruPack()
    with pytest.raises(InvalidContact) as raised:
        pack.judge(_contact(**over), pack.Config())
    assert raised.value.field == field
    with pytest.raises(InvalidContact):
        pack.judge_reference(_contact(**over), pack.Config())


def test_naive_instants_and_unknown_zones_fail_on_construction() -> None:
    with pytest.raises(InvalidContact) as naive:
        _contact(planned_at=datetime(2026, 3, 2, 10, 0))
    assert naive.value.field == "planned_at"
    with pytest.raises(UnknownTimeZone):
        _contact(debtor_timezone="Mars/Base")
    with pytest.raises(InvalidContact) as prior:
        PriorContact(channel="sms", at=datetime(2026, 3, 1, 10, 0))
    assert prior.value.field == "at"


def test_brazil_subdivisions_come_from_the_calendar() -> None:
    pack = BrazilPack()
    contact = _contact(debtor_country="BR", debtor_timezone="America/Sao_Paulo",
                       debtor_subdivision="BR-XX")
    with pytest.raises(InvalidContact) as raised:
        pack.judge_many([contact], pack.Config())
    assert raised.value.field == "debtor_subdivision"
