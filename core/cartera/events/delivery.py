"""Delivering events to webhook endpoints: fan-out, claims, signed POSTs, retries.

Each round of a :class:`DeliveryWorker` runs three short transactions and no HTTP call
inside any of them:

1. **dispatch**: new outbox events become one ``event_deliveries`` row per enabled endpoint
   whose filters match (one dispatcher at a time: a PostgreSQL advisory lock, so delivery
   ids follow event order);
2. **claim**: one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``
   marks up to a batch of due deliveries ``delivering`` with a lease (``next_attempt_at``);
   two workers never take the same row, and a crashed worker's rows are due again when the
   lease lapses;
3. the POSTs, signed (one HMAC per message and secret), at most ``concurrency`` at once,
   over kept-alive connections (:class:`Lanes`) through the host's egress-checked transport:
   each new connection's host name is resolved and checked once and the connection made to
   the checked address, so a name re-pointed later (DNS rebinding) cannot redirect it;
4. **record**: attempts logged (status, latency, error, excerpt per attempt), deliveries
   done or rescheduled with exponential backoff (:func:`backoff`, for
   :data:`RETRY_HORIZON`), endpoints failing for :data:`RETRY_HORIZON` disabled (with a
   ``webhook_endpoint.disabled`` event); on PostgreSQL one statement each for the batch.

A worker runs ``pipelines`` rounds at once on PostgreSQL (one claims or records while
another sends), each with its own lanes, the first one also fanning out; several workers
may run at once.

At-least-once: a delivery is marked done only after a 2xx, so a crash between the POST and
the record sends it again (receivers de-duplicate on ``webhook-id``, the event id).
In order per debtor and endpoint: a delivery is not claimed while an earlier open delivery
of the same debtor to the same endpoint exists, so a debtor's events reach an endpoint one
at a time in delivery-id order. That is event order except where it cannot be: an event
whose transaction committed after a later one of the same debtor was fanned out, and a
redelivery (a new delivery, after the debtor's open ones). A failing delivery holds the
debtor's later ones back until it is delivered or given up; a lapsed lease may send one
twice (still in order). Events without a debtor are not ordered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict, defaultdict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from cartera import clock
from cartera.db.base import seal_payload, table_of
from cartera.events import endpoints as endpoint_service
from cartera.events import signing
from cartera.events.models import DeliveryAttempt, EventDelivery, OutboxEvent, WebhookEndpoint
from cartera.events.outbox import emit
from cartera.events.queries import event_out
from cartera.integrations.service import SharedTransport

log = logging.getLogger("cartera.events")

RETRY_HORIZON = timedelta(days=3)
"""A delivery is retried for this long; an endpoint failing this long is disabled."""
LEASE = timedelta(seconds=60)
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 6 * 3600.0
EXCERPT_CHARS = 200
OPEN = ("pending", "delivering")
_DISPATCH_LOCK = 0x63617274_65767473  # "cartevts": one dispatcher at a time (PostgreSQL)


def backoff(attempt: int) -> timedelta:
    """Delay after failed attempt number ``attempt`` (from 1): 30 s doubling, at most 6 h,
    with ±20 % jitter so a recovering receiver is not hit by every retry at once."""
    base = min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


async def _take_dispatch_lock(session: AsyncSession) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite serialises writers
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(_DISPATCH_LOCK))))


async def dispatch(session: AsyncSession, limit: int = 1000) -> int:
    """Fan out up to ``limit`` new events to their endpoints' deliveries; how many events."""
    if not await _take_dispatch_lock(session):
        return 0
    e = OutboxEvent
    events = (await session.execute(
        select(e.seq, e.tenant_id, e.type, e.debtor_id, e.created_at)
        .where(e.dispatched.is_(False)).order_by(e.seq).limit(limit))).all()
    if not events:
        return 0
    w = WebhookEndpoint
    targets = (await session.execute(
        select(w.id, w.tenant_id, w.event_types, w.created_at)
        .where(w.enabled.is_(True), w.tenant_id.in_({ev.tenant_id for ev in events})))).all()
    now = clock.now()
    rows = [{"tenant_id": ev.tenant_id, "event_seq": ev.seq, "endpoint_id": t.id,
             "debtor_id": ev.debtor_id, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for ev in events for t in targets
            if t.tenant_id == ev.tenant_id and t.created_at <= ev.created_at
            and endpoint_service.matches(list(t.event_types), ev.type)]
    if rows:
        await session.execute(insert(table_of(EventDelivery)), rows)
    await session.execute(update(e).where(e.seq.in_([ev.seq for ev in events]))
                          .values(dispatched=True))
    return len(events)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    tenant_id: int
    attempt: int
    created_at: datetime
    endpoint_id: int
    url: str
    secrets: list[str]
    event_id: str
    event_type: str
    body: bytes


async def claim(session: AsyncSession, limit: int) -> list[Claim]:
    """Take up to ``limit`` due deliveries (see the module docstring for the guarantees)."""
    now = clock.now()
    d, earlier = EventDelivery, aliased(EventDelivery)
    held_back = (select(earlier.id).where(
        earlier.endpoint_id == d.endpoint_id, earlier.debtor_id == d.debtor_id,
        earlier.id < d.id, earlier.status.in_(OPEN)).exists())
    pick = (select(d.id).where(d.status.in_(OPEN), d.next_attempt_at <= now, ~held_back)
            .order_by(d.id).limit(limit).with_for_update(skip_locked=True))
    take = (update(d).where(d.id.in_(pick.scalar_subquery()))
            .values(status="delivering", attempts=d.attempts + 1, next_attempt_at=now + LEASE)
            .returning(d.id, d.tenant_id, d.attempts, d.created_at, d.endpoint_id,
                       d.event_seq))
    if session.get_bind().dialect.name == "postgresql":
        # one round trip: the claim and what is sent, joined to the rows it took
        taken_cte = take.cte("taken")
        rows = (await session.execute(
            select(taken_cte, OutboxEvent, WebhookEndpoint)
            .join(OutboxEvent, OutboxEvent.seq == taken_cte.c.event_seq)
            .join(WebhookEndpoint, WebhookEndpoint.id == taken_cte.c.endpoint_id))).all()
        taken = [r[:6] for r in rows]
        events = {r.OutboxEvent.seq: r.OutboxEvent for r in rows}
        targets = {r.WebhookEndpoint.id: r.WebhookEndpoint for r in rows}
    else:
        taken = list((await session.execute(
            take.execution_options(synchronize_session=False))).all())
        if not taken:
            return []
        events = {ev.seq: ev for ev in (await session.scalars(
            select(OutboxEvent).where(OutboxEvent.seq.in_({t[5] for t in taken})))).all()}
        targets = {ep.id: ep for ep in (await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_({t[4] for t in taken})))
        ).all()}
    bodies = {seq: msgspec.json.encode(event_out(ev)) for seq, ev in events.items()}
    secrets = {i: endpoint_service.signing_secrets(ep) for i, ep in targets.items()}
    return [Claim(t_id, tenant_id, attempt, created_at, endpoint_id,
                  targets[endpoint_id].url, secrets[endpoint_id], events[seq].id,
                  events[seq].type, bodies[seq])
            for t_id, tenant_id, attempt, created_at, endpoint_id, seq
            in sorted(taken, key=lambda t: t[0])]


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None


async def _read_excerpt(response: httpx.Response) -> str:
    """The start of the body as sent (no ``accept-encoding`` is asked for). A body longer
    than a few excerpts is not read on: closing the response then drops the connection."""
    chunk = b""
    async for part in response.aiter_raw():
        chunk += part
        if len(chunk) >= EXCERPT_CHARS * 4:
            break
    return chunk.decode("utf-8", "replace")[:EXCERPT_CHARS]


USER_AGENT = "cartera-webhooks/0.1"


async def send(transport: httpx.AsyncBaseTransport, c: Claim, wait_seconds: float = 10.0
               ) -> Outcome:
    """POST one delivery, signed, through ``transport`` (an egress-checked one: the host's
    rules apply, no redirect is followed), waiting at most ``wait_seconds`` for each of
    connect, write and read; never raises (a failure is an :class:`Outcome`)."""
    at = clock.now()
    headers = signing.headers(c.secrets, c.event_id, int(at.timestamp()), c.body)
    headers["user-agent"] = USER_AGENT
    started = time.perf_counter()
    try:
        request = httpx.Request("POST", c.url, content=c.body, headers=headers, extensions={
            "timeout": {"connect": wait_seconds, "read": wait_seconds,
                        "write": wait_seconds, "pool": wait_seconds}})
        response = await transport.handle_async_request(request)
        try:
            excerpt = await _read_excerpt(response)
        finally:
            await response.aclose()
        code = response.status_code
        ok, error = 200 <= code < 300, None if 200 <= code < 300 else f"HTTP {code}"
    except Exception as exc:  # every failure is retried: the log says what it was
        code, ok, excerpt = None, False, None
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency = int((time.perf_counter() - started) * 1000)
    return Outcome(c, at, ok, code, latency, error, excerpt or None)


def origin_of(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of a URL, lower-cased: the key connections are kept by."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class Lanes:
    """Kept-alive connections to webhook receivers, per origin (scheme, host, port).

    A lane is an egress-checked transport (:class:`SharedTransport`: the host's rules,
    the TCP connect pinned to the address that was checked) holding at most one
    connection, used by one request at a time. A single pool of many connections would
    do the same work, but its bookkeeping scans every connection for each queued request
    whenever a request starts or ends (CPU growing with connections x requests in
    flight); lanes keep that constant. At most ``per_origin`` lanes per origin and
    ``max_origins`` origins are kept; the least recently used origin's lanes are closed."""

    def __init__(self, per_origin: int, max_origins: int = 64) -> None:
        self._per_origin = max(1, per_origin)
        self._max_origins = max_origins
        self._lanes: OrderedDict[tuple[str, str], list[SharedTransport]] = OrderedDict()

    def take(self, origin: tuple[str, str], wanted: int) -> list[SharedTransport]:
        """Up to ``wanted`` lanes to ``origin`` (at least one), opened on demand."""
        lanes = self._lanes.pop(origin, [])
        lanes.extend(SharedTransport(max_connections=1)
                     for _ in range(min(wanted, self._per_origin) - len(lanes)))
        self._lanes[origin] = lanes
        return lanes[:max(1, wanted)]

    async def trim(self) -> None:
        """Close the lanes of the least recently used origins beyond ``max_origins`` (call
        when none is in use)."""
        while len(self._lanes) > self._max_origins:
            _, evicted = self._lanes.popitem(last=False)
            for lane in evicted:
                await lane.close()

    async def close(self) -> None:
        while self._lanes:
            _, lanes = self._lanes.popitem()
            for lane in lanes:
                await lane.close()


async def record(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Log the attempts and move each delivery on; disable endpoints failing too long.

    A delivery moves on only if it is still this claim's (``delivering``, same attempt
    number): one whose lease lapsed and was claimed again is the new claim's to record.
    Every attempt is logged while its delivery exists (an endpoint deleted meanwhile took
    its deliveries with it). On PostgreSQL: one ``INSERT ... SELECT`` and one ``UPDATE ...
    FROM unnest(...)`` for the whole batch."""
    if not outcomes:
        return
    now = clock.now()
    moves = [_moved_on(o, now) for o in outcomes]
    if session.get_bind().dialect.name == "postgresql":
        await _record_pg(session, outcomes, moves)
    else:
        await _record_rows(session, outcomes, moves)
    await _track_endpoints(session, outcomes, now)


def _attempt_row(o: Outcome) -> dict[str, Any]:
    return {"tenant_id": o.claim.tenant_id, "delivery_id": o.claim.delivery_id,
            "endpoint_id": o.claim.endpoint_id, "event_id": o.claim.event_id,
            "event_type": o.claim.event_type, "attempt": o.claim.attempt, "at": o.at,
            "succeeded": o.succeeded, "status_code": o.status_code,
            "latency_ms": o.latency_ms, "error": o.error, "response_excerpt": o.excerpt}


_EXCERPT = "event_delivery_attempts.response_excerpt"

_PG_LOG_ATTEMPTS = text("""
INSERT INTO event_delivery_attempts (tenant_id, delivery_id, endpoint_id, event_id,
    event_type, attempt, at, succeeded, status_code, latency_ms, error, response_excerpt)
SELECT a.tenant_id, a.delivery_id, a.endpoint_id, a.event_id, a.event_type, a.attempt,
       a.at, a.succeeded, a.status_code, a.latency_ms, a.error, a.response_excerpt
FROM unnest(CAST(:tenant_id AS bigint[]), CAST(:delivery_id AS bigint[]),
            CAST(:endpoint_id AS bigint[]), CAST(:event_id AS varchar[]),
            CAST(:event_type AS varchar[]), CAST(:attempt AS integer[]),
            CAST(:at AS timestamptz[]), CAST(:succeeded AS boolean[]),
            CAST(:status_code AS integer[]), CAST(:latency_ms AS integer[]),
            CAST(:error AS varchar[]), CAST(:response_excerpt AS bytea[]))
     WITH ORDINALITY AS a(tenant_id, delivery_id, endpoint_id, event_id, event_type,
                          attempt, at, succeeded, status_code, latency_ms, error,
                          response_excerpt, n)
JOIN event_deliveries AS d ON d.id = a.delivery_id
ORDER BY a.n
FOR KEY SHARE OF d
""")
"""``FOR KEY SHARE``: a delivery being deleted (its endpoint or event) is waited for and
then skipped, so the log never names a delivery that is gone. ``response_excerpt`` comes
sealed (:func:`~cartera.db.base.seal_payload`): the statement bypasses the column type."""

_PG_MOVE_ON = text("""
UPDATE event_deliveries AS d
SET status = m.status, next_attempt_at = m.next_at, last_status_code = m.code,
    last_error = m.error, delivered_at = m.delivered
FROM unnest(CAST(:id AS bigint[]), CAST(:attempt AS integer[]), CAST(:status AS varchar[]),
            CAST(:next_at AS timestamptz[]), CAST(:code AS integer[]),
            CAST(:error AS varchar[]), CAST(:delivered AS timestamptz[]))
     AS m(id, attempt, status, next_at, code, error, delivered)
WHERE d.id = m.id AND d.attempts = m.attempt AND d.status = 'delivering'
""")


async def _record_pg(session: AsyncSession, outcomes: Sequence[Outcome],
                     moves: Sequence[dict[str, Any]]) -> None:
    rows = [_attempt_row(o) for o in outcomes]
    params = {k: [r[k] for r in rows] for k in rows[0]}
    params["response_excerpt"] = [None if x is None else seal_payload(x.encode(), _EXCERPT)
                                  for x in params["response_excerpt"]]
    await session.execute(_PG_LOG_ATTEMPTS, params)
    await session.execute(_PG_MOVE_ON, {
        "id": [m["b_id"] for m in moves], "attempt": [m["b_attempt"] for m in moves],
        "status": [m["b_status"] for m in moves], "next_at": [m["b_next"] for m in moves],
        "code": [m["b_code"] for m in moves], "error": [m["b_error"] for m in moves],
        "delivered": [m["b_delivered"] for m in moves]})


async def _record_rows(session: AsyncSession, outcomes: Sequence[Outcome],
                       moves: Sequence[dict[str, Any]]) -> None:
    """SQLite (one writer at a time): the same, with one executemany for the moves."""
    alive = set((await session.scalars(select(EventDelivery.id).where(
        EventDelivery.id.in_([o.claim.delivery_id for o in outcomes])))).all())
    kept = [o for o in outcomes if o.claim.delivery_id in alive]
    if not kept:
        return
    await session.execute(insert(table_of(DeliveryAttempt)), [_attempt_row(o) for o in kept])
    t = table_of(EventDelivery)
    await session.execute(
        update(t).where(t.c.id == bindparam("b_id"), t.c.attempts == bindparam("b_attempt"),
                        t.c.status == "delivering")
        .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
                last_status_code=bindparam("b_code"), last_error=bindparam("b_error"),
                delivered_at=bindparam("b_delivered")),
        [m for m in moves if m["b_id"] in alive])


def _moved_on(o: Outcome, now: datetime) -> dict[str, Any]:
    if o.succeeded:
        status, next_at, delivered = "succeeded", now, now
    else:
        next_at, delivered = now + backoff(o.claim.attempt), None
        status = "failed" if next_at > o.claim.created_at + RETRY_HORIZON else "pending"
    return {"b_id": o.claim.delivery_id, "b_attempt": o.claim.attempt, "b_status": status,
            "b_next": next_at, "b_code": o.status_code, "b_error": o.error,
            "b_delivered": delivered}


async def _track_endpoints(session: AsyncSession, outcomes: Sequence[Outcome],
                           now: datetime) -> None:
    w = WebhookEndpoint
    ok = {o.claim.endpoint_id for o in outcomes if o.succeeded}
    failed = {o.claim.endpoint_id for o in outcomes if not o.succeeded} - ok
    if ok:
        await session.execute(update(w).where(w.id.in_(ok), w.failing_since.is_not(None))
                              .values(failing_since=None))
    if not failed:
        return
    await session.execute(update(w).where(w.id.in_(failed), w.failing_since.is_(None))
                          .values(failing_since=now))
    gone = (await session.execute(
        update(w).where(w.id.in_(failed), w.enabled.is_(True),
                        w.failing_since <= now - RETRY_HORIZON)
        .values(enabled=False, disabled_reason="failing", updated_at=now)
        .returning(w.id, w.tenant_id, w.url, w.failing_since)
        .execution_options(synchronize_session=False))).all()
    for row in gone:
        emit(session, row.tenant_id, "webhook_endpoint.disabled", "webhook_endpoint", row.id,
             data={"url": row.url, "reason": "failing",
                   "failing_since": row.failing_since.isoformat()})
    if gone:
        d = EventDelivery
        await session.execute(
            update(d).where(d.endpoint_id.in_([g.id for g in gone]), d.status == "pending")
            .values(status="failed", last_error="endpoint disabled after failing")
            .execution_options(synchronize_session=False))


async def purge(session: AsyncSession, older_than: timedelta = timedelta(days=30),
                limit: int = 10_000) -> int:
    """Delete up to ``limit`` events older than ``older_than`` (and, by cascade, their
    deliveries and attempts)."""
    e = OutboxEvent
    old = (select(e.seq).where(e.created_at < clock.now() - older_than)
           .order_by(e.seq).limit(limit))
    result = await session.execute(delete(e).where(e.seq.in_(old.scalar_subquery()))
                                   .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


class DeliveryWorker:
    """Delivers due events in rounds: ``async with DeliveryWorker(sm) as w: await w.drain()``.

    Several may run at once (processes or tasks): claims never overlap. ``batch``:
    deliveries claimed per round; ``concurrency``: requests in flight at once (and lanes
    per origin), shared by ``pipelines`` rounds running at once (PostgreSQL only);
    ``timeout``: seconds allowed for each connect, write and read of a POST."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, batch: int = 200,
                 concurrency: int = 64, timeout: float = 10.0, pipelines: int = 2) -> None:
        self._sessionmaker = sessionmaker
        self._batch = batch
        self._concurrency = max(1, concurrency)
        self._limit = asyncio.Semaphore(self._concurrency)
        self._timeout = timeout
        # SQLite: one pipeline (its writers are serialised, and concurrent fan-outs there
        # are not kept apart by an advisory lock)
        bind = sessionmaker.kw.get("bind")
        if getattr(getattr(bind, "dialect", None), "name", None) != "postgresql":
            pipelines = 1
        count = max(1, min(pipelines, self._concurrency))
        self._lanes = [Lanes(per_origin=self._concurrency // count) for _ in range(count)]

    async def __aenter__(self) -> DeliveryWorker:
        return self

    async def __aexit__(self, *_: object) -> None:
        for lanes in self._lanes:
            await lanes.close()

    async def run_once(self, pipeline: int = 0, *, dispatching: bool = True) -> int:
        """One round (dispatch, claim, send, record); how many deliveries were attempted.

        ``pipeline`` (below ``pipelines``): rounds of different pipelines may run at the
        same time (one claims and records while another sends); each has its own lanes.
        ``dispatching=False`` skips the fan-out (another pipeline does it)."""
        if dispatching:
            async with self._sessionmaker() as session:
                await dispatch(session)
                await session.commit()
        async with self._sessionmaker() as session:
            claims = await claim(session, self._batch)
            await session.commit()
        if not claims:
            return 0
        outcomes = await self.send_all(claims, pipeline)
        async with self._sessionmaker() as session:
            await record(session, outcomes)
            await session.commit()
        return len(claims)

    async def send_all(self, claims: Sequence[Claim], pipeline: int = 0) -> list[Outcome]:
        """POST ``claims`` concurrently: at most ``concurrency`` requests in flight, each
        origin's share spread over its lanes (a lane sends its part one after another)."""
        by_origin: defaultdict[tuple[str, str], list[Claim]] = defaultdict(list)
        for c in claims:
            by_origin[origin_of(c.url)].append(c)
        runs: list[Coroutine[Any, Any, list[Outcome]]] = []
        for origin, group in by_origin.items():
            lanes = self._lanes[pipeline].take(origin, len(group))
            runs.extend(self._run_lane(lane, group[i::len(lanes)])
                        for i, lane in enumerate(lanes))
        try:
            done = {o.claim.delivery_id: o
                    for part in await asyncio.gather(*runs) for o in part}
        finally:
            await self._lanes[pipeline].trim()
        return [done[c.delivery_id] for c in claims]

    async def _run_lane(self, lane: SharedTransport, part: Sequence[Claim]) -> list[Outcome]:
        out = []
        for c in part:
            async with self._limit:
                out.append(await send(lane, c, self._timeout))
        return out

    async def drain(self, max_seconds: float = 20.0) -> int:
        """Rounds (in every pipeline) until nothing is due or ``max_seconds`` passed; how
        many deliveries."""
        deadline = time.monotonic() + max_seconds
        async with self._sessionmaker() as session:  # every pipeline finds work at once
            await dispatch(session)
            await session.commit()

        async def rounds(pipeline: int) -> int:
            done = 0
            while time.monotonic() < deadline and (
                    n := await self.run_once(pipeline, dispatching=pipeline == 0)):
                done += n
            return done

        return sum(await asyncio.gather(*(rounds(i) for i in range(len(self._lanes)))))

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        """Rounds in every pipeline until cancelled; a pipeline that found nothing due
        waits ``poll_seconds``."""

        async def rounds(pipeline: int) -> None:
            while True:
                try:
                    busy = await self.run_once(pipeline, dispatching=pipeline == 0)
                except Exception:  # a database hiccup must not stop the worker
                    log.exception("webhook delivery round failed")
                    busy = 0
                if not busy:
                    await asyncio.sleep(poll_seconds)

        await asyncio.gather(*(rounds(i) for i in range(len(self._lanes))))
