"""Edge cases refused when a version is created or activated: a window that never opens
lawfully where the tenant's debtors are (only Sundays in a country that forbids Sundays),
and a message step 0 days after a previous message."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cartera_sdk.compliance import Allow, Deny, Reason

from cartera.messaging import gate
from tests.conftest import TenantClient
from tests.strategies.helpers import ALWAYS, message_step, segments, strategy, template
from tests.strategies.test_gate_window import _ar_debtor

AR = ZoneInfo("America/Argentina/Buenos_Aires")


def no_sundays(pack: Any, planned: Any, config: Any = None) -> Any:
    if planned.planned_at.astimezone(AR).isoweekday() == 7:
        return Deny(reasons=[Reason(code="sunday_forbidden", message="no contact on Sundays",
                                    rule_ref="AR-SUN")])
    return Allow(reasons=[Reason(code="ok", message="ok")])


async def test_a_window_of_only_forbidden_days_is_refused_at_activation(
        tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await _ar_debtor(tenant)
    monkeypatch.setattr(gate, "_judge_one", no_sundays)
    sundays = {**ALWAYS, "weekdays": [7]}
    s = await strategy(tenant, "sun", [seg["late"]], [
        {"key": "call", "kind": "task", "task": {"queue": "q"}, "window": sundays},
        message_step("one", sms, window=sundays)], activate=False)
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/1/activate", json={})
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["code"], body["param"]) == ("window_never_lawful", "steps[1].window")
    assert "AR" in body["detail"] and "sunday_forbidden" in body["detail"]
    assert (await tenant.api.get(f"/v1/strategies/{s['id']}")).json()["active_version"] is None
    weekend = await strategy(tenant, "weekend", [seg["late"]], [
        message_step("one", sms, window={**ALWAYS, "weekdays": [6, 7]})], activate=False)
    r = await tenant.api.post(f"/v1/strategies/{weekend['id']}/versions/1/activate", json={})
    assert r.status_code == 200, r.text


async def test_without_debtors_where_packs_apply_nothing_is_probed(
        tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    monkeypatch.setattr(gate, "_judge_one", no_sundays)
    await strategy(tenant, "sun", [seg["late"]], [
        message_step("one", sms, window={**ALWAYS, "weekdays": [7]})])  # activates


async def test_a_message_the_same_day_as_the_previous_one_is_refused(
        tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    r = await tenant.api.post("/v1/strategies", json={
        "code": "twice", "name": "twice", "version": {"segment_ids": [seg["late"]], "steps": [
            message_step("one", sms), message_step("two", sms)]}})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("zero_offset", "steps[1].offset_days")
    # After a wait or a task, or a day later, it is fine.
    await strategy(tenant, "ok", [seg["late"]], [
        message_step("one", sms), message_step("two", sms, offset=1),
        {"key": "w", "kind": "wait", "window": ALWAYS}, message_step("three", sms)])


def needs_authorisation(pack: Any, planned: Any, config: Any = None) -> Any:
    """Like Colombia's pack: a channel the debtor did not authorise is denied."""
    if planned.channel not in (planned.authorized_channels or []):
        return Deny(reasons=[Reason(code="channel_not_authorised", message="not authorised")])
    return Allow(reasons=[Reason(code="ok", message="ok")])


async def test_a_debtors_consent_is_not_a_window_that_never_opens(
        tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe asks about the window: it judges as a debtor who authorised the channel
    (the demo's strategies were refused for Colombian debtors before)."""
    seg = await segments(tenant)
    sms = await template(tenant)
    await _ar_debtor(tenant)
    monkeypatch.setattr(gate, "_judge_one", needs_authorisation)
    s = await strategy(tenant, "any", [seg["late"]], [message_step("one", sms)],
                       activate=False)
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/1/activate", json={})
    assert r.status_code == 200, r.text
