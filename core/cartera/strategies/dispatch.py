"""Dispatch: due message actions become queued interactions, in bulk, through messaging's
batched send path.

``strategies.dispatch`` (queued about once a minute per tenant with due actions, see
:func:`queue_due_dispatches`) runs :func:`dispatch_all`: batches of up to :data:`BATCH` due
actions, one transaction each, :data:`LANES` of them in flight at once on PostgreSQL (each
lane over its own debtors), all sharing one :class:`Run` (the instant they judge at, the
tenant's integrations and policies, each gate key's verdict). A batch claims its actions
(:func:`claim`: on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers take
disjoint rows), reads their debtors as plain rows (:func:`load_batch`: three selects of
the columns the gate reads, no ORM object per debtor), runs the gate over each channel of
the step's fallback chain once per distinct :func:`route_key` in the run, for the first
debtor of the key (the first channel with an integration, a usable contact point and the
gate's allowance wins; a deferral puts the action back as ``deferred`` until the lawful
instant; a denial of every channel makes it ``denied``), writes every action's gate
decision (:func:`cartera.compliance.decisions.record_shared`), and in one statement
(:data:`_ENQUEUE`, an ``INSERT ... SELECT`` over the batch) inserts the interactions and
their first timeline events and marks the actions ``dispatched``; it makes sure the batch
send job of each integration used waits (:func:`cartera.messaging.batch.ensure_batch_job`).
An action is dispatched at most once: claimed by one transaction, and
``interactions.action_id`` is unique. A crash before a batch's commit leaves its actions
due for the next run (at least once). Sending, retries and claim-before-send are
messaging's; the batch sender judges each message again with its rendered content.

Actions of paused enrollments wait. The same job executes the due task, stage change and
webhook steps (:mod:`.execute`), also claimed at most once per action.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from cartera_sdk.compliance import PriorContact
from sqlalchemy import (
    ARRAY,
    BigInteger,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.compliance import decisions
from cartera.compliance.service import GatePolicy
from cartera.compliance.service import load_policy as load_gate_policy
from cartera.crypto import payload_keyring, pii_cipher
from cartera.db.base import UtcDateTime, payload_context, table_of
from cartera.db.engine import tenant_session
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, every_minute, job
from cartera.messaging import batch, gate
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.plugins.host import PluginHost
from cartera.plugins.registry import current_host
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance
from cartera.strategies import paylinks, policy
from cartera.strategies.execute import BATCH as EXECUTE_BATCH
from cartera.strategies.execute import EXECUTED_KINDS, execute_due
from cartera.strategies.models import Action, Enrollment, StrategyVersion
from cartera.strategies.planner import (
    CONTACT_KINDS,
    Loaded,
    chain_of,
    pick_contact_point,
    window_fit,
)

KIND = "strategies.dispatch"
BATCH = 5000
DISPATCHABLE = ("planned", "deferred")


def _due(tenant_id: int, now: datetime) -> Any:
    a, e = table_of(Action), table_of(Enrollment)
    paused = exists().where(e.c.id == a.c.enrollment_id, e.c.status == "paused")
    return select(a.c.id).where(
        a.c.tenant_id == tenant_id, a.c.kind.in_(CONTACT_KINDS), a.c.status.in_(DISPATCHABLE),
        a.c.verdict.is_not(None), a.c.planned_at <= now, not_(paused))


async def claim(session: AsyncSession, tenant_id: int, now: datetime, limit: int,
                lane: tuple[int, int] | None = None) -> list[Any]:
    """Take up to ``limit`` due actions (id, debtor, version, step) until the transaction
    ends: on PostgreSQL locked ``FOR UPDATE SKIP LOCKED`` (rows another dispatcher holds are
    skipped; the batch's own statements then set each one's status, so an action row is
    written once per dispatch), on SQLite marked ``dispatched`` at once (the write takes
    the database's write lock). ``lane`` ``(i, n)``: only the actions of debtors whose id
    is ``i`` modulo ``n`` (:func:`dispatch_all`'s lanes never share a debtor)."""
    a = table_of(Action)
    due = _due(tenant_id, now).order_by(a.c.planned_at, a.c.id).limit(limit)
    if lane is not None and lane[1] > 1:
        due = due.where(a.c.debtor_id % lane[1] == lane[0])
    columns = (a.c.id, a.c.debtor_id, a.c.version_id, a.c.step_index, a.c.strategy_id,
               a.c.due_on, a.c.attempt)
    if session.get_bind().dialect.name == "postgresql":
        return list((await session.execute(due.with_only_columns(*columns).with_for_update(
            of=a, skip_locked=True))).all())
    result = await session.execute(update(a).where(
        a.c.id.in_(due.scalar_subquery()), a.c.status.in_(DISPATCHABLE))
        .values(status="dispatched", updated_at=now).returning(*columns))
    return list(result.all())


async def channel_integrations(session: AsyncSession, host: PluginHost,
                               tenant_id: int) -> dict[str, list[int]]:
    """The tenant's enabled channel integrations by the channel their provider sends, in
    id order."""
    found: dict[str, list[int]] = defaultdict(list)
    for integration in await session.scalars(select(Integration).where(
            Integration.tenant_id == tenant_id, Integration.provider_kind == "channel",
            Integration.enabled).order_by(Integration.id)):
        registered = host.provider("channel", integration.provider_name)
        if registered is not None:
            found[registered.provider.channel].append(integration.id)
    return found


def _route(host: PluginHost, loaded: Loaded, row: Any, step: dict[str, Any],
           integrations: dict[str, list[int]], now: datetime) -> dict[str, Any]:
    """The first channel of the fallback chain that can be used now, or why none can."""
    debtor = loaded.debtors[row.debtor_id]
    dpd = aging.days_past_due(loaded.oldest.get(row.debtor_id), row.due_on)
    tried: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for ch in chain_of(step, row.attempt):
        channel = ch["channel"]
        integration = ch.get("integration_id")
        if integration is None and integrations.get(channel):
            integration = integrations[channel][0]
        elif integration is not None and integration not in integrations.get(channel, []):
            integration = None
        if integration is None:
            tried.append({"channel": channel, "reasons": ["no_integration"]})
            continue
        cp = pick_contact_point(loaded.contacts.get(row.debtor_id, []), channel)
        verdict = gate.decide(host, debtor, cp, channel, now, dpd, loaded.recent[row.debtor_id],
                              policy=loaded.policy)
        last = {"verdict": {**gate.as_json(verdict), "channel": channel, "tried": list(tried)},
                "decision": verdict.decision, "until": verdict.until}
        if verdict.decision == "deny":
            tried.append({"channel": channel, "reasons": [r.code for r in verdict.reasons]})
            continue
        return {**last, "channel": channel, "integration_id": integration,
                "template_id": ch["template_id"]}
    denied = last.get("verdict") or {"decision": "deny", "reasons": []}
    return {"decision": "deny", "verdict": {**denied, "tried": tried}}


def _hold(rules: policy.ContactPolicy, made: dict[int, list[datetime]], zone: str,
          row: Any, step: dict[str, Any], routed: dict[str, Any],
          now: datetime) -> dict[str, Any]:
    """The contact policy again at dispatch, over the contacts made (and those of this
    batch): a contact it holds back goes back deferred inside the step's window."""
    mine = sorted(made.get(row.debtor_id, []))
    at, held = policy.place(rules, mine, now, lambda t: window_fit(t, zone, step["window"]))
    if not held:
        made.setdefault(row.debtor_id, []).append(now)
        return routed
    denied = policy.check(rules, mine, at) is not None
    return {"decision": "deny" if denied else "defer", "until": None if denied else at,
            "verdict": policy.held_verdict(routed["verdict"], held, at, denied)}


@dataclass(slots=True)
class _Point:
    """What the gate and the send path read of a contact point (a plain row, not an ORM
    object): :func:`cartera.messaging.gate.check_contact_point` and
    :func:`~cartera.strategies.planner.pick_contact_point` read it as a ``ContactPoint``."""

    id: int
    kind: str
    sealed: str
    """The value as stored (sealed for ``contact_points.value``): the gate never reads it,
    so only the contact point an action is sent to is opened (:class:`_Sealer`)."""
    consent: str
    opted_out_channels: list[str]
    suppressions: dict[str, Any]
    origin: str
    label: str | None


@dataclass(slots=True)
class _Debtor:
    """What the gate reads of a debtor (a plain row, read as a ``Debtor``)."""

    id: int
    tenant_id: int
    country: str
    subdivision: str | None
    timezone: str
    kind: str
    attributes: dict[str, Any]


@dataclass
class _Batch:
    """The claimed batch's debtors as plain rows: each one's gate key (but the step) and
    contact points."""

    keys: dict[int, tuple[Any, ...]]
    points: dict[int, list[_Point]]
    zones: dict[int, str]
    recent: dict[int, list[tuple[Any, ...]]]

    def loaded(self, tenant_id: int, debtor_ids: Iterable[int],
               gate_policy: GatePolicy) -> Loaded:
        """The gate's input for ``debtor_ids`` (the first debtor of each key), from the
        rows read: what :func:`~cartera.strategies.planner.load_for_gate` would load."""
        found = Loaded({}, {}, {}, defaultdict(list), gate_policy)
        for debtor_id in debtor_ids:
            key = self.keys.get(debtor_id)
            if key is None:
                continue
            country, subdivision, zone, kind, attributes, oldest = key[:6]
            found.debtors[debtor_id] = _Debtor(  # type: ignore[assignment]
                debtor_id, tenant_id, country, subdivision, zone, kind,
                _json(attributes) or {})
            found.contacts[debtor_id] = self.points.get(  # type: ignore[assignment]
                debtor_id, [])
            found.oldest[debtor_id] = oldest
            found.recent[debtor_id] = [PriorContact(channel=c, at=at, outcome=o)
                                       for c, at, o in self.recent.get(debtor_id, ())]
        return found


_EMPTY = ("[]", "{}", "null")


def _json(raw: str | None) -> Any:
    return None if raw is None or raw in _EMPTY else msgspec.json.decode(raw)


def _among(column: Any, ids: list[int], dialect: str) -> Any:
    """``column`` is one of ``ids``: on PostgreSQL ``= ANY(CAST(:ids AS bigint[]))``, one
    parameter (not a list of a thousand), sent as the array's text (built here at once
    rather than dumped element by element by the driver)."""
    if dialect == "postgresql":
        listed = "{" + ",".join(map(str, ids)) + "}"
        return column == any_(cast(literal(listed, String), ARRAY(BigInteger)))
    return column.in_(ids)


async def load_batch(session: AsyncSession, tenant_id: int, debtor_ids: list[int],
                     since: datetime) -> _Batch:
    """Three selects of plain columns over the batch's debtors (their fields and oldest
    unpaid due date, their contact points in the order they are picked, their contacts
    made since ``since``), and each debtor's gate key: everything the gate and the packs
    read of their contact but the step, the instant and the contact point ids and values
    (:func:`route_key`)."""
    dialect = session.get_bind().dialect.name
    ids = sorted(set(debtor_ids))
    d, b, cp, i = (table_of(Debtor), table_of(DebtorBalance), table_of(ContactPoint),
                   table_of(Interaction))
    oldest = (select(b.c.debtor_id, func.min(b.c.oldest_unpaid_due_date).label("oldest"))
              .where(b.c.tenant_id == tenant_id, _among(b.c.debtor_id, ids, dialect))
              .group_by(b.c.debtor_id).subquery("b"))
    points: dict[int, list[_Point]] = defaultdict(list)
    seen: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in (await session.execute(select(
            cp.c.debtor_id, cp.c.id, cp.c.kind, type_coerce(cp.c.value, Text), cp.c.consent,
            cast(cp.c.opted_out_channels, String), cast(cp.c.suppressions, String),
            cp.c.origin, cp.c.label).where(_among(cp.c.debtor_id, ids, dialect))
            .order_by(cp.c.debtor_id, cp.c.preferred.desc(), cp.c.id))).all():
        points[row[0]].append(_Point(row[1], row[2], row[3], row[4], _json(row[5]) or [],
                                     _json(row[6]) or {}, row[7], row[8]))
        seen[row[0]].append((row[2], row[4], row[5], row[6], row[7], row[8]))
    recent: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in (await session.execute(select(
            i.c.debtor_id, i.c.channel, i.c.created_at, i.c.status).where(
            _among(i.c.debtor_id, ids, dialect), *gate.counted_contacts(since))
            .order_by(i.c.debtor_id, i.c.created_at, i.c.id))).all():
        recent[row[0]].append((row[1], row[2], row[3]))
    keys: dict[int, tuple[Any, ...]] = {}
    zones: dict[int, str] = {}
    for row in (await session.execute(select(
            d.c.id, d.c.country, d.c.subdivision, d.c.timezone, d.c.kind,
            cast(d.c.attributes, String), oldest.c.oldest)
            .select_from(d.outerjoin(oldest, oldest.c.debtor_id == d.c.id))
            .where(_among(d.c.id, ids, dialect)))).all():
        debtor_id = row[0]
        zones[debtor_id] = row[3]
        keys[debtor_id] = (row[1], row[2], row[3], row[4], row[5], row[6],
                           tuple(seen.get(debtor_id, ())), tuple(recent.get(debtor_id, ())))
    return _Batch(keys, points, zones, recent)


RUN_SECONDS = 30.0
"""How long one dispatch run judges at the same instant with the configuration it read."""


@dataclass
class _Judged:
    """One gate key's route and gate decision rows, judged once per run (``n`` numbers it
    in the run, for the statements that share its values among the key's actions)."""

    n: int
    routed: dict[str, Any]
    judged: list[dict[str, Any]]
    encoded: msgspec.Raw | None = None
    reasons: bytes | None = None

    def detail(self, action_id: int) -> bytes:
        """The JSON of an action's first timeline event detail, ``{"action_id",
        "reasons"}`` (the key's reason codes, encoded once a run), as
        ``msgspec.json.encode`` writes it."""
        if self.reasons is None:
            self.reasons = msgspec.json.encode(_reasons(self.routed))
        return b'{"action_id":%d,"reasons":%b}' % (action_id, self.reasons)

    def as_key(self) -> msgspec.Raw:
        """The key's row of :data:`_ENQUEUE`'s ``keys``, encoded once a run."""
        if self.encoded is None:
            x = self.routed
            self.encoded = msgspec.Raw(msgspec.json.encode({
                "k": self.n, "channel": x["channel"], "integration_id": x["integration_id"],
                "template_id": x["template_id"], "verdict": x["verdict"],
                "skipped": _skipped(x)}))
        return self.encoded


@dataclass
class Run:
    """What the batches of one dispatch run share: the instant they judge at, the tenant's
    channel integrations, gate policy and contact policy as read when the run began, the
    steps of the versions seen, and each gate key's route and verdict (:func:`route_key`:
    at one instant, the same key routes the same way, whichever batch it falls in).

    A run is fresh for :data:`RUN_SECONDS`; the job then starts another one, so a long
    dispatch judges at an instant and with a configuration at most that old (the batch
    sender judges each message again when it sends it)."""

    tenant_id: int
    now: datetime
    integrations: dict[str, list[int]]
    gate_policy: GatePolicy
    rules: policy.ContactPolicy
    started: float = field(default_factory=time.monotonic)
    steps: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    memo: dict[tuple[Any, ...], _Judged] = field(default_factory=dict)

    def fresh(self) -> bool:
        return time.monotonic() - self.started < RUN_SECONDS

    async def steps_of(self, session: AsyncSession,
                       version_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The steps of each version (an active version is immutable: read once a run)."""
        missing = set(version_ids) - self.steps.keys()
        if missing:
            sv = table_of(StrategyVersion)
            for version_id, steps in (await session.execute(select(sv.c.id, sv.c.steps).where(
                    sv.c.id.in_(sorted(missing))))).all():
                self.steps[version_id] = steps
        return self.steps


async def open_run(session: AsyncSession, host: PluginHost, tenant_id: int,
                   now: datetime | None = None) -> Run:
    """A dispatch run of the tenant at ``now`` (default: the clock), its configuration read
    in ``session``."""
    return Run(tenant_id, now or clock.now(),
               await channel_integrations(session, host, tenant_id),
               await load_gate_policy(session, host, tenant_id),
               await policy.load_policy(session, tenant_id))


async def dispatch_due(session: AsyncSession, host: PluginHost, runner: Any, tenant_id: int,
                       now: datetime | None = None, limit: int = BATCH,
                       run: Run | None = None,
                       lane: tuple[int, int] | None = None) -> dict[str, int]:
    """One batch of due actions, in the caller's transaction; counts per outcome.

    ``run`` carries what the batches of one run share (:class:`Run`; its instant wins over
    ``now``); without it the batch is a run of its own. ``lane``: only that lane's
    debtors (:func:`claim`). The batch's debtors are read as
    plain rows (:func:`load_batch`); the fallback chain is judged once per distinct
    :func:`route_key` in the run (the gate and the packs are pure functions of it: in a
    portfolio, per step, country, zone, day, days past due and contact state) for the
    first debtor of the key, from those rows; each action then takes its own contact
    point."""
    if run is None:
        run = await open_run(session, host, tenant_id, now)
    now = run.now
    rows = await claim(session, tenant_id, now, limit, lane)
    if not rows:
        return {}
    steps = await run.steps_of(session, {r.version_id for r in rows})
    since = now - timedelta(days=7)
    batch_rows = await load_batch(session, tenant_id, [r.debtor_id for r in rows], since)
    keyed = [(r, route_key(batch_rows, r)) for r in rows]
    first: dict[tuple[Any, ...], Any] = {}
    for r, key in keyed:
        if key not in run.memo:
            first.setdefault(key, r)
    if first:
        loaded = batch_rows.loaded(tenant_id, [r.debtor_id for r in first.values()],
                                   run.gate_policy)
        for key, r in first.items():  # r is the key's first action
            routed = _route(host, loaded, r, steps[r.version_id][r.step_index],
                            run.integrations, now)
            verdict = routed.get("verdict") or {}
            judged = decisions.rows(tenant_id, "dispatch", now, {
                **verdict, "decision": routed["decision"], "until": routed.get("until")},
                str(verdict.get("channel") or routed.get("channel") or ""), None, None) \
                if verdict.get("reasons") else []  # the gate judged (not only: no integration)
            run.memo[key] = _Judged(len(run.memo), routed, judged)
    rules = run.rules
    made = await policy.contacts_made(
        session, [r.debtor_id for r in rows],
        now - policy.WEEK - timedelta(hours=rules.min_gap_hours or 0)) if rules.active else {}
    sends: list[_Send] = []
    back: list[dict[str, Any]] = []
    shared: dict[int, list[dict[str, Any]]] = {}
    members: list[tuple[int, int, int]] = []
    for r, key in keyed:
        known = run.memo[key]
        if known.judged:
            shared[known.n] = known.judged
            members.append((known.n, r.debtor_id, r.id))
        routed = known.routed
        if routed["decision"] == "allow" and rules.active:
            step = steps[r.version_id][r.step_index]
            routed = _hold(rules, made, batch_rows.zones[r.debtor_id], r, step, routed, now)
        if routed["decision"] == "allow":
            # this debtor's own contact point of the chosen channel
            cp = pick_contact_point(cast_points(batch_rows.points.get(r.debtor_id, [])),
                                    routed["channel"])
            sends.append(_Send(r, known, cp, steps[r.version_id][r.step_index].get(
                "payment_link")))
        else:
            back.append({"b_id": r.id, "b_status": "denied" if routed["decision"] == "deny"
                         else "deferred", "b_verdict": routed["verdict"],
                         "b_at": routed.get("until") or now})
    await decisions.record_shared(session, shared, members)  # one INSERT for the batch
    if back:
        await _put_back(session, back, now)
    if sends:
        await _enqueue(session, runner, tenant_id, sends, now)
    return {"dispatched": len(sends), "deferred": sum(b["b_status"] == "deferred" for b in back),
            "denied": sum(b["b_status"] == "denied" for b in back)}


@dataclass(slots=True)
class _Send:
    """An action to enqueue: its row, its key's route, its own contact point and the
    step's payment-link option."""

    row: Any
    key: _Judged
    cp: Any
    payment_link: dict[str, Any] | None

    @property
    def routed(self) -> dict[str, Any]:
        return self.key.routed


def cast_points(points: list[_Point]) -> list[ContactPoint]:
    return points  # type: ignore[return-value]


_PUT_BACK = text("""
    UPDATE actions AS a SET status = v.status, verdict = v.verdict, planned_at = v.at,
        updated_at = :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(id bigint, status text, verdict jsonb,
                                                       at timestamptz)
    WHERE a.id = v.id
""")


async def _put_back(session: AsyncSession, back: list[dict[str, Any]], now: datetime) -> None:
    """The actions the gate or the contact policy held back: ``deferred`` to their lawful
    instant, or ``denied`` (on PostgreSQL one ``UPDATE ... FROM jsonb_to_recordset``)."""
    a = table_of(Action)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_PUT_BACK, {"now": now, "rows": msgspec.json.encode([
            {"id": b["b_id"], "status": b["b_status"], "verdict": b["b_verdict"],
             "at": b["b_at"]} for b in back]).decode()})
        return
    await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
        status=bindparam("b_status"), verdict=bindparam("b_verdict", type_=a.c.verdict.type),
        planned_at=bindparam("b_at", type_=UtcDateTime()), updated_at=now), back)


def route_key(batch_rows: _Batch, row: Any) -> tuple[Any, ...]:
    """Everything :func:`_route` reads about one action but the contact point ids and
    values: the step and fallback attempt, the days past due, the debtor's country,
    subdivision, zone, kind and attributes, their contact points as the gate sees them in
    the order they are picked (kind, consent, opt-outs, suppressions, origin and label: a
    work phone is judged apart from a home one) and their recent contacts. Two actions
    with the same key (at the same instant) are routed to the same channel with the same
    verdict. JSON fields are compared as their stored text: equal text is equal data
    (different text of equal data only judges twice)."""
    debtor = batch_rows.keys.get(row.debtor_id)
    dpd = aging.days_past_due(debtor[5], row.due_on) if debtor is not None else None
    return (row.version_id, row.step_index, row.attempt, dpd, debtor and debtor[:5],
            debtor and debtor[6:])


_ENQUEUE = text("""
    WITH k AS (
        SELECT * FROM jsonb_to_recordset(CAST(:keys AS jsonb)) AS k(
            k integer, channel text, integration_id bigint, template_id bigint,
            verdict jsonb, skipped jsonb)
    ), v AS MATERIALIZED (
        SELECT v.action_id, v.debtor_id, v.strategy_id, v.contact_point_id, v.address,
            decode(v.variables, 'base64') AS variables, decode(v.detail, 'base64') AS detail,
            v.not_before, k.channel, k.integration_id, k.template_id, k.verdict, k.skipped
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
            action_id bigint, debtor_id bigint, strategy_id bigint, k integer,
            contact_point_id bigint, address text, variables text, detail text,
            not_before timestamptz)
        JOIN k ON k.k = v.k
    ), made AS (
        INSERT INTO interactions (tenant_id, debtor_id, direction, channel, status,
            integration_id, template_id, contact_point_id, address, obligation_ids,
            variables, content, verdict, "trigger", action_id, not_before, attempts,
            created_at, updated_at)
        SELECT :tenant, v.debtor_id, 'outbound', v.channel, 'queued', v.integration_id,
            v.template_id, v.contact_point_id, v.address, '[]'::jsonb, v.variables, NULL,
            v.verdict, jsonb_build_object('source', 'strategy', 'action_id', v.action_id,
                                          'strategy_id', v.strategy_id),
            v.action_id, v.not_before, 0, :now, :now
        FROM v
        ON CONFLICT (action_id) WHERE action_id IS NOT NULL DO NOTHING
        RETURNING id, action_id
    ), events AS (
        INSERT INTO interaction_events (tenant_id, interaction_id, status, at, occurred_at,
                                        source, detail)
        SELECT :tenant, made.id, 'queued', :now, NULL, 'strategy', v.detail
        FROM made JOIN v ON v.action_id = made.action_id
    )
    UPDATE actions AS a SET status = 'dispatched', channel = v.channel, verdict = v.verdict,
        outcome = jsonb_build_object('interaction_id', coalesce(made.id, (
            SELECT i.id FROM interactions AS i WHERE i.action_id = v.action_id)),
            'channel', v.channel, 'integration_id', v.integration_id, 'skipped', v.skipped),
        updated_at = :now
    FROM v LEFT JOIN made ON made.action_id = v.action_id
    WHERE a.id = v.action_id
""")
"""One statement for the whole batch: the interactions (none for an action that already
has one: the unique ``action_id``), their first timeline events, and the actions marked
dispatched with their outcome. The batch travels as two JSON documents: each gate key's
route and verdict once (``keys``), and per action only its own values (``rows``); the
trigger and the outcome are built from them in SQL. The interaction's ``variables`` and the
event's ``detail`` are sealed payloads (:func:`~cartera.db.base.seal_json`), sealed in
Python per action and carried as base64 text."""


class _Sealer:
    """The sealing of one batch's enqueue, for the raw statement :data:`_ENQUEUE` (which
    bypasses the column types): the ciphers are looked up once a batch, not per value."""

    def __init__(self) -> None:
        self.pii = pii_cipher()
        self.ring = payload_keyring()
        self.variables = payload_context("interactions.variables")
        self.detail = payload_context("interaction_events.detail")

    def address(self, cp: _Point) -> str:
        """The address a queued interaction is sent to: its contact point's value, opened
        and sealed for ``interactions.address`` as the column holds it (the one place a raw
        SQL write of ``interactions.address`` takes its value from)."""
        return self.pii.seal(self.pii.open(cp.sealed, "contact_points.value"),
                             "interactions.address")

    def payload(self, data: bytes, context: bytes) -> str:
        """``data`` (JSON) sealed as a sealed payload column holds it
        (:func:`~cartera.db.base.seal_payload`), as base64 text for the statement to
        decode into the column's bytes."""
        return base64.b64encode(self.ring.seal(data, context=context)).decode()


_NO_VARIABLES = msgspec.json.encode({})


async def _enqueue(session: AsyncSession, runner: Any, tenant_id: int,
                   sends: list[_Send], now: datetime) -> None:
    """Insert the queued interactions and their first events, record them on the actions
    (on PostgreSQL one statement, :data:`_ENQUEUE`; an action that already has its
    interaction gets no second one), hold those whose step asks for a payment link until
    the link is made, and make each integration's batch job wait."""
    options = [x.payment_link for x in sends]
    extra: list[dict[str, Any]] = [{} for _ in sends]
    paylinks.hold(extra, options, now)  # a step's payment link is made before it is sent
    if session.get_bind().dialect.name == "postgresql":
        keys = {x.key.n: x.key for x in sends}
        sealer = _Sealer()
        await session.execute(_ENQUEUE, {
            "tenant": tenant_id, "now": now,
            "keys": msgspec.json.encode([k.as_key() for k in keys.values()]).decode(),
            "rows": msgspec.json.encode([{
                "action_id": x.row.id, "debtor_id": x.row.debtor_id,
                "strategy_id": x.row.strategy_id, "k": x.key.n, "contact_point_id": x.cp.id,
                "address": sealer.address(x.cp), "not_before": e.get("not_before"),
                "variables": sealer.payload(msgspec.json.encode(e["variables"]) if e.get(
                    "variables") else _NO_VARIABLES, sealer.variables),
                "detail": sealer.payload(x.key.detail(x.row.id), sealer.detail)}
                for x, e in zip(sends, extra, strict=True)]).decode()})
    else:
        await _enqueue_each(session, tenant_id, sends, extra, now)
    await _enqueue_links(session, runner, tenant_id, sends, options, now)
    for integration_id in sorted({x.routed["integration_id"] for x in sends}):
        await batch.ensure_batch_job(session, runner, tenant_id, integration_id)


async def _enqueue_links(session: AsyncSession, runner: Any, tenant_id: int,
                         sends: list[_Send], options: list[dict[str, Any] | None],
                         now: datetime) -> None:
    """The payment-link job for the held interactions (looked up by their actions: few)."""
    held = [(x, o) for x, o in zip(sends, options, strict=True) if o]
    if not held:
        return
    it = table_of(Interaction)
    found = await session.execute(select(it.c.action_id, it.c.id).where(
        it.c.action_id.in_([x.row.id for x, _ in held])))
    ids = {int(a): int(i) for a, i in found.all()}
    await paylinks.enqueue(session, runner, tenant_id,
                           [(int(ids[x.row.id]), x.routed["integration_id"]) for x, _ in held],
                           [o for _, o in held], now)


def _trigger(r: Any) -> dict[str, Any]:
    return {"source": "strategy", "action_id": r.id, "strategy_id": r.strategy_id}


def _reasons(x: dict[str, Any]) -> list[str]:
    return [c["code"] for c in x["verdict"]["reasons"]]


def _skipped(x: dict[str, Any]) -> list[dict[str, Any]]:
    return list(x["verdict"].get("tried", []))


def _outcome(interaction_id: int | None, x: dict[str, Any]) -> dict[str, Any]:
    return {"interaction_id": interaction_id, "channel": x["channel"],
            "integration_id": x["integration_id"], "skipped": _skipped(x)}


async def _enqueue_each(session: AsyncSession, tenant_id: int, sends: list[_Send],
                        extra: list[dict[str, Any]], now: datetime) -> None:
    """SQLite (one writer at a time, so a look first is enough): a multi-row INSERT each
    for the actions without an interaction yet, then the actions."""
    it = table_of(Interaction)
    cipher = pii_cipher()
    ids: dict[int, int] = {int(a): int(i) for a, i in (await session.execute(select(
        it.c.action_id, it.c.id).where(it.c.action_id.in_([x.row.id for x in sends])))).all()}
    new = [(x, e) for x, e in zip(sends, extra, strict=True) if x.row.id not in ids]
    if new:
        made = (await session.execute(insert(it).returning(
            it.c.id, sort_by_parameter_order=True), [{
                "tenant_id": tenant_id, "debtor_id": x.row.debtor_id, "direction": "outbound",
                "channel": x.routed["channel"], "status": "queued",
                "integration_id": x.routed["integration_id"],
                "template_id": x.routed["template_id"], "contact_point_id": x.cp.id,
                "address": cipher.open(x.cp.sealed, "contact_points.value"),
                "obligation_ids": [], "content": None,
                "verdict": x.routed["verdict"], "created_at": now, "updated_at": now,
                "trigger": _trigger(x.row), "action_id": x.row.id, "variables": {},
                "not_before": None, **e}
            for x, e in new])).scalars().all()
        ids.update({x.row.id: i for i, (x, _) in zip(made, new, strict=True)})
        await session.execute(insert(table_of(InteractionEvent)), [
            {"tenant_id": tenant_id, "interaction_id": ids[x.row.id], "status": "queued",
             "at": now, "occurred_at": None, "source": "strategy",
             "detail": {"action_id": x.row.id, "reasons": _reasons(x.routed)}}
            for x, _ in new])
    a = table_of(Action)
    await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
        status="dispatched", channel=bindparam("b_channel"),
        verdict=bindparam("b_verdict", type_=a.c.verdict.type),
        outcome=bindparam("b_outcome", type_=a.c.outcome.type), updated_at=now), [
        {"b_id": x.row.id, "b_channel": x.routed["channel"], "b_verdict": x.routed["verdict"],
         "b_outcome": _outcome(ids[x.row.id], x.routed)} for x in sends])


LANES = 2
"""Batches in flight at once on PostgreSQL (:func:`dispatch_all`): one lane's statements
run in the database while another's batch is judged in Python."""


async def dispatch_all(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                       runner: Any, tenant_id: int, now: datetime | None = None,
                       most: int | None = None, limit: int = BATCH,
                       lanes: int = LANES) -> dict[str, int]:
    """Dispatch the tenant's due message actions, a batch (one transaction) at a time, until
    none is left (or ``most`` are done); counts per outcome. The batches share a
    :class:`Run`, a fresh one every :data:`RUN_SECONDS` (at the clock's instant then,
    unless ``now`` is given).

    On PostgreSQL ``lanes`` batches are in flight at once, each on its own connection and
    over its own debtors (those whose id is the lane's number modulo ``lanes``): a debtor's
    actions are dispatched by one lane, one batch after another, never by two
    transactions at once, as with a single lane; ``SKIP LOCKED`` claims keep any other
    dispatcher off the rows a lane holds. SQLite (one writer at a time) runs one lane."""
    totals: dict[str, int] = defaultdict(int)
    state: dict[str, Any] = {"run": None, "left": most}
    opening = asyncio.Lock()  # one run at a time, shared by the lanes
    async with sessionmaker() as probe:
        if probe.get_bind().dialect.name != "postgresql":
            lanes = 1

    async def lane(i: int) -> None:
        while True:
            wanted = limit if state["left"] is None else min(limit, state["left"])
            if wanted <= 0:
                return
            if state["left"] is not None:
                state["left"] -= wanted  # reserved: the other lanes take at most the rest
            async with tenant_session(sessionmaker, tenant_id) as session:
                async with opening:
                    run: Run | None = state["run"]
                    if run is None or not run.fresh():
                        run = state["run"] = await open_run(session, host, tenant_id, now)
                done = await dispatch_due(session, host, runner, tenant_id, limit=wanted,
                                          run=run, lane=(i, lanes))
            got = sum(done.values())
            if state["left"] is not None:
                state["left"] += wanted - got
            for key, n in done.items():
                totals[key] += n
            if got < wanted:
                return

    try:
        async with asyncio.TaskGroup() as group:  # a lane that fails stops the others
            for i in range(lanes):
                group.create_task(lane(i))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return dict(totals)


@job(KIND)
async def dispatch_job(ctx: JobContext) -> dict[str, Any]:
    """Execute the tenant's due task, stage change and webhook actions, then dispatch its
    due messages (:func:`dispatch_all`), a batch (one transaction) at a time."""
    totals: dict[str, int] = defaultdict(int)
    while True:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            executed = await execute_due(session, ctx.tenant_id)
        for key, n in executed.items():
            totals[f"executed_{key}"] += n
        if sum(executed.values()) < EXECUTE_BATCH:
            break
    for key, n in (await dispatch_all(ctx.sessionmaker, current_host(), current_runner(),
                                      ctx.tenant_id)).items():
        totals[key] += n
    return dict(totals)


@every_minute
async def queue_due_dispatches(sessionmaker: async_sessionmaker[AsyncSession],
                               runner: Any) -> None:
    """Make sure a dispatch job waits for each tenant with due actions (keyed, so calling
    this every minute queues no duplicates)."""
    a = table_of(Action)
    now = clock.now()
    async with sessionmaker() as session:
        tenants = (await session.scalars(select(a.c.tenant_id).distinct().where(or_(
            and_(a.c.kind.in_(CONTACT_KINDS), a.c.status.in_(DISPATCHABLE),
                 a.c.verdict.is_not(None), a.c.planned_at <= now),
            and_(a.c.kind.in_(EXECUTED_KINDS), a.c.status == "planned",
                 a.c.planned_at <= now))))).all()
        for tenant_id in tenants:
            await runner.enqueue_once(session, tenant_id, KIND, {},
                                      key=f"{KIND}:{tenant_id}")
        await session.commit()
