"""The contact gate: consent, opt-outs, contact kinds, and the country's compliance packs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from litestar import Litestar

from cartera.messaging import gate
from cartera.plugins.registry import current_host
from cartera.portfolio.models import ContactPoint, Debtor

pytestmark = pytest.mark.usefixtures("http")  # the app must be running (plugins loaded)


def debtor(country: str = "AR") -> Debtor:
    return Debtor(id=1, tenant_id=1, external_ref="x", kind="person", name="Ana",
                  country=country, subdivision=None,
                  timezone="America/Argentina/Buenos_Aires", attributes={})


def phone(**over: object) -> ContactPoint:
    values: dict[str, object] = {"id": 1, "debtor_id": 1, "kind": "phone",
                                 "value": "+5491112345678", "consent": "granted",
                                 "opted_out_channels": []}
    values.update(over)
    return ContactPoint(**values)


async def judge(app: Litestar, cp: ContactPoint | None, channel: str, at: datetime,
                country: str = "AR") -> gate.schemas.Verdict:
    async with app.state.ctx.sessionmaker() as session:
        return await gate.judge(session, current_host(), debtor(country), cp, channel, at)


async def test_pack_allows_defers_and_denies_with_reasons(app: Litestar) -> None:
    noon = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 12:00 in Buenos Aires
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # 20:30 in Buenos Aires
    allowed = await judge(app, phone(), "sms", noon)
    assert (allowed.decision, allowed.reasons[0].code) == ("allow", "within_hours")
    deferred = await judge(app, phone(), "sms", late)
    assert deferred.decision == "defer"
    assert deferred.until == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # 08:00 next day
    assert deferred.reasons[0].source == "fixture_ar"
    denied = await judge(app, phone(), "voice", noon)
    assert (denied.decision, denied.reasons[0].rule_ref) == ("deny", "fixture 1")


async def test_consent_opt_out_and_kind_come_first(app: Litestar) -> None:
    noon = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    cases = [(None, "no_contact_point"), (phone(kind="email"), "wrong_contact_kind"),
             (phone(consent="revoked"), "consent_revoked"),
             (phone(opted_out_channels=["sms"]), "opted_out")]
    for cp, code in cases:
        verdict = await judge(app, cp, "sms", noon)
        assert (verdict.decision, verdict.reasons[0].code) == ("deny", code)


async def test_countries_without_a_pack_are_allowed_and_say_so(app: Litestar) -> None:
    verdict = await judge(app, phone(), "sms", datetime(2026, 11, 24, 15, tzinfo=UTC), "PE")
    assert (verdict.decision, verdict.reasons[0].code) == ("allow", "no_compliance_pack")


def test_deny_beats_defer_beats_allow() -> None:
    from cartera_sdk.compliance import Allow, Defer, Deny, Reason

    r = [Reason(code="c", message="m")]
    until = datetime(2026, 1, 1, tzinfo=UTC)
    assert gate.combine([("a", Allow(reasons=r)), ("b", Defer(until=until, reasons=r))]
                        ).decision == "defer"
    assert gate.combine([("a", Deny(reasons=r)), ("b", Defer(until=until, reasons=r))]
                        ).decision == "deny"
