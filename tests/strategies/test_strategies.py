"""Strategies and versions: validation naming the path, the version life cycle (an active
version is immutable), in-flight policies on activation, scopes and tenant isolation."""

from __future__ import annotations

from typing import Any

from cartera.auth.scopes import DEFAULT_CLIENT_SCOPES
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    ALWAYS,
    enrollments,
    late_debtor,
    message_step,
    plan,
    segments,
    strategy,
    template,
)


async def _create(t: TenantClient, version: dict[str, Any]) -> Any:
    return await t.api.post("/v1/strategies", json={"code": "x", "name": "x",
                                                    "version": version})


async def test_validation_names_the_offending_path(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    mail = await template(tenant, "email", "mail")
    ok = message_step("a", sms)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"segment_ids": [999999], "steps": [ok]}, "segment_ids[0]", "unknown_segment"),
        ({"segment_ids": [seg["late"]], "stage_ids": [999999], "steps": [ok]},
         "stage_ids[0]", "unknown_stage"),
        ({"segment_ids": [seg["late"]], "steps": [ok, {**ok, "key": "b", "channels": [
            {"channel": "sms", "template_id": sms},
            {"channel": "email", "template_id": 999999}]}]},
         "steps[1].channels[1].template_id", "unknown_template"),
        ({"segment_ids": [seg["late"]], "steps": [{**ok, "channels": [
            {"channel": "sms", "template_id": mail}]}]},
         "steps[0].channels[0].template_id", "template_channel_mismatch"),
        ({"segment_ids": [seg["late"]], "steps": [ok, ok]}, "steps[1].key",
         "duplicate_step_key"),
        ({"segment_ids": [seg["late"]], "steps": [{**ok, "offset_days": -2}]},
         "steps[0].offset_days", "negative_offset"),
        ({"segment_ids": [seg["late"]], "steps": [{**ok, "window": {
            **ALWAYS, "start_hour": 20, "end_hour": 8}}]},
         "steps[0].window.start_hour", "empty_window"),
        ({"segment_ids": [seg["late"]], "steps": [{**ok, "channels": []}]},
         "steps[0].channels", "missing_channels"),
        ({"segment_ids": [seg["late"]], "steps": [{"key": "t", "kind": "task"}]},
         "steps[0].task", "missing_task"),
        ({"segment_ids": [seg["late"]], "steps": [{"key": "t", "kind": "stage_change",
                                                   "stage_code": "nope"}]},
         "steps[0].stage_code", "unknown_stage"),
        ({"segment_ids": [seg["late"]], "steps": [ok], "stop_rule": {
            "feature": "nope", "op": "eq", "value": 1}}, "stop_rule.feature",
         "unknown_feature"),
    ]
    for version, param, code in cases:
        r = await _create(tenant, version)
        assert r.status_code == 422, (param, r.text)
        assert (r.json()["param"], r.json()["code"]) == (param, code), r.json()
    r = await _create(tenant, {"segment_ids": [seg["late"]], "steps": [
        {**ok, "window": {**ALWAYS, "weekdays": []}}]})
    assert r.status_code == 422 and "weekdays" in r.json()["param"], r.text
    assert (await tenant.api.get("/v1/strategies")).json()["data"] == []  # nothing half-saved


async def test_version_life_cycle(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    s = await strategy(tenant, "s", [seg["late"]], [message_step("a", sms)], activate=False)
    version = {"segment_ids": [seg["late"]], "steps": [message_step("b", sms)]}
    r = await tenant.api.put(f"/v1/strategies/{s['id']}/versions/1", json=version)
    assert r.status_code == 200 and r.json()["steps"][0]["key"] == "b", r.text
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/1/activate")
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    r = await tenant.api.put(f"/v1/strategies/{s['id']}/versions/1", json=version)
    assert r.status_code == 409 and r.json()["code"] == "version_not_draft"
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json=version)
    assert r.status_code == 201 and r.json()["number"] == 2
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/2/activate")
    got = (await tenant.api.get(f"/v1/strategies/{s['id']}")).json()
    assert got["active_version"] == 2
    assert [v["status"] for v in got["versions"]] == ["retired", "active"]


async def test_activation_moves_in_flight_debtors(tenant: TenantClient,
                                                  run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "M")
    steps = [message_step("one", sms), message_step("two", sms, offset=3),
             message_step("three", sms, offset=3)]
    s = await strategy(tenant, "s", [seg["late"]], steps)
    await plan(tenant, run_jobs)
    [before] = await enrollments(tenant)
    assert before["step_key"] == "two"
    # Version 2 drops "one": same_key moves the debtor to "two", now at index 0.
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json={
        "segment_ids": [seg["late"]], "steps": steps[1:]})
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/2/activate",
                              json={"in_flight": "same_key"})
    assert r.status_code == 200, r.text
    [moved] = await enrollments(tenant)
    assert (moved["version_id"], moved["step_index"], moved["step_key"]) == (
        r.json()["id"], 0, "two")
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json={
        "segment_ids": [seg["late"]], "steps": steps})
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/3/activate",
                              json={"in_flight": "restart"})
    [restarted] = await enrollments(tenant)
    assert (restarted["step_index"], restarted["step_key"]) == (0, "one")


async def test_finish_keeps_debtors_on_the_old_version(tenant: TenantClient,
                                                       run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "F")
    s = await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                                   message_step("two", sms, offset=3)])
    await plan(tenant, run_jobs)
    [before] = await enrollments(tenant)
    await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json={
        "segment_ids": [seg["late"]], "steps": [message_step("new", sms)]})
    await tenant.api.post(f"/v1/strategies/{s['id']}/versions/2/activate", json={})
    await plan(tenant, run_jobs)
    [after] = await enrollments(tenant)
    assert (after["version_id"], after["step_key"], after["status"]) == (
        before["version_id"], "two", "active")


async def test_scopes_and_isolation(tenant: TenantClient, make_tenant: Any) -> None:
    assert {"strategies:read", "strategies:write"} <= set(DEFAULT_CLIENT_SCOPES)
    seg = await segments(tenant)
    sms = await template(tenant)
    s = await strategy(tenant, "s", [seg["late"]], [message_step("a", sms)])
    other = await make_tenant()
    assert (await other.api.get(f"/v1/strategies/{s['id']}")).status_code == 404
    reader = await make_tenant(scopes=["strategies:read"])
    assert (await reader.api.get("/v1/strategies")).status_code == 200
    r = await reader.api.post("/v1/strategies/plan")
    assert r.status_code == 403, r.text
