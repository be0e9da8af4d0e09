"""Task, stage change and webhook steps are executed at dispatch, each action once: a task
row, the debtor's stage moved through the placement writer, an ``action.requested``
event; ``/v1/tasks`` lists, completes and cancels tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from litestar import Litestar

from cartera.db.engine import tenant_session
from cartera.strategies.dispatch import queue_due_dispatches
from cartera.strategies.execute import execute_due
from tests.conftest import TenantClient
from tests.strategies.helpers import ALWAYS, actions, late_debtor, plan, segments, strategy


def task_step(key: str = "call", queue: str = "calls", **extra: Any) -> dict[str, Any]:
    return {"key": key, "kind": "task", "window": ALWAYS,
            "task": {"queue": queue, "priority": 70, "due_hours": 48}, **extra}


async def dispatch(app: Litestar, run_jobs: Any) -> None:
    await queue_due_dispatches(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()


async def test_a_task_step_creates_one_task_and_the_task_api_closes_it(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    d = await late_debtor(tenant, "T")
    s = await strategy(tenant, "calls", [seg["late"]], [task_step()])
    await plan(tenant, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert (a["kind"], a["status"]) == ("task", "planned")
    await dispatch(app, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "done", a
    r = await tenant.api.get("/v1/tasks", params={"queue": "calls", "status": "open"})
    assert r.status_code == 200, r.text
    [task] = r.json()["data"]
    assert (task["debtor_id"], task["action_id"], task["strategy_id"], task["priority"]) == (
        d, a["id"], s["id"], 70)
    assert a["outcome"] == {"kind": "task", "task_id": task["id"]}
    assert (datetime.fromisoformat(task["due_at"])
            - datetime.fromisoformat(a["planned_at"])).total_seconds() == 48 * 3600
    # Executing again does nothing: the action is done, the task unique on it.
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await execute_due(session, tenant.tenant_id) == {}
    assert len((await tenant.api.get("/v1/tasks")).json()["data"]) == 1
    assert (await tenant.api.get("/v1/tasks", params={"queue": "other"})).json()["data"] == []
    assert (await tenant.api.get("/v1/tasks", params={"debtor_id": d})).json()["data"]
    r = await tenant.api.post(f"/v1/tasks/{task['id']}/complete", json={"note": "paid"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["note"]) == ("done", "paid")
    assert r.json()["closed_at"] is not None
    r = await tenant.api.post(f"/v1/tasks/{task['id']}/cancel")
    assert (r.status_code, r.json()["code"]) == (409, "task_not_open"), r.text
    audit = (await tenant.api.get("/v1/audit", params={"limit": 100})).json()["data"]
    assert {"strategy.action_executed", "task.completed"} <= {e["action"] for e in audit}


async def test_tasks_of_another_tenant_answer_404(
        tenant: TenantClient, make_tenant: Any, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    await late_debtor(tenant, "T")
    await strategy(tenant, "calls", [seg["late"]], [task_step()])
    await plan(tenant, run_jobs)
    await dispatch(app, run_jobs)
    [task] = (await tenant.api.get("/v1/tasks")).json()["data"]
    other = await make_tenant()
    assert (await other.api.get(f"/v1/tasks/{task['id']}")).status_code == 404
    assert (await other.api.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 404
    assert (await other.api.get("/v1/tasks")).json()["data"] == []


async def test_a_stage_change_step_moves_the_stage_with_its_history(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    d = await late_debtor(tenant, "S")
    await strategy(tenant, "legal", [seg["late"]], [
        {"key": "to_legal", "kind": "stage_change", "stage_code": "judicial",
         "window": ALWAYS}])
    await plan(tenant, run_jobs)
    await dispatch(app, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert (a["status"], a["outcome"]) == ("done", {"kind": "stage_change",
                                                    "stage_code": "judicial"}), a
    stage = (await tenant.api.get(f"/v1/stages/debtors/{d}")).json()
    assert (stage["stage"], stage["manual"]) == ("judicial", True)
    assert f"action {a['id']}" in stage["reason"]
    moves = (await tenant.api.get("/v1/stages/history", params={"debtor_id": d})).json()
    assert moves["data"][-1]["to_stage"] == "judicial", moves
    events = (await tenant.api.get("/v1/events", params={"limit": 100})).json()["data"]
    assert "debtor.stage_changed" in {e["type"] for e in events}


async def test_a_webhook_step_writes_one_requested_event(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    d = await late_debtor(tenant, "W")
    await strategy(tenant, "letters", [seg["late"]], [
        {"key": "letter", "kind": "webhook", "event": "letter.requested", "window": ALWAYS}])
    await plan(tenant, run_jobs)
    await dispatch(app, run_jobs)
    await dispatch(app, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "done"
    events = [e for e in (await tenant.api.get("/v1/events", params={"limit": 100})).json()[
        "data"] if e["type"] == "action.requested"]
    assert len(events) == 1, events
    assert events[0]["data"]["event"] == "letter.requested"
    assert events[0]["data"]["action_id"] == a["id"]
    assert a["outcome"]["event_id"] == events[0]["id"]


async def test_a_paused_enrollments_task_waits(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    d = await late_debtor(tenant, "P")
    await strategy(tenant, "calls", [seg["late"]], [task_step(), {
        "key": "later", "kind": "wait", "offset_days": 5, "window": ALWAYS}])
    await plan(tenant, run_jobs)
    [e] = (await tenant.api.get("/v1/enrollments", params={"debtor_id": d})).json()["data"]
    assert (await tenant.api.post(f"/v1/enrollments/{e['id']}/pause")).status_code == 200
    await dispatch(app, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "planned"
    assert (await tenant.api.get("/v1/tasks")).json()["data"] == []


class Crash(Exception):
    pass


async def test_a_crash_before_commit_leaves_the_action_for_the_next_run(
        tenant: TenantClient, app: Litestar, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At least once: the claim, the task and the record commit together, so a crash
    between them (here: writing the audit entries) leaves the action planned and no task;
    the next run makes exactly one."""
    from cartera.strategies import execute

    seg = await segments(tenant)
    d = await late_debtor(tenant, "C")
    await strategy(tenant, "calls", [seg["late"]], [task_step()])
    await plan(tenant, run_jobs)
    real_insert = execute.insert

    def crashing(table: Any) -> Any:
        if table.name == "audit_log":
            raise Crash
        return real_insert(table)

    monkeypatch.setattr(execute, "insert", crashing)
    with pytest.raises(Crash):
        async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
            await execute_due(session, tenant.tenant_id)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "planned"
    assert (await tenant.api.get("/v1/tasks")).json()["data"] == []
    monkeypatch.setattr(execute, "insert", real_insert)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await execute_due(session, tenant.tenant_id) == {"task": 1}
    assert len((await tenant.api.get("/v1/tasks")).json()["data"]) == 1


async def test_many_tasks_are_inserted_in_chunks(
        tenant: TenantClient, app: Litestar, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement takes at most 65,535 values: the task rows go in chunks (a 30-day
    simulation of 10,000 debtors once sent them in one)."""
    from cartera.strategies import execute

    monkeypatch.setattr(execute, "TASK_CHUNK", 2)
    seg = await segments(tenant)
    for ref in ("K1", "K2", "K3"):
        await late_debtor(tenant, ref)
    await strategy(tenant, "calls", [seg["late"]], [task_step()])
    await plan(tenant, run_jobs)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await execute_due(session, tenant.tenant_id) == {"task": 3}
    tasks = (await tenant.api.get("/v1/tasks")).json()["data"]
    assert len(tasks) == 3 and len({t["action_id"] for t in tasks}) == 3
    assert {a["outcome"]["task_id"] for a in await actions(tenant)} == {t["id"] for t in tasks}
