"""Recording provider outcomes set-based (:func:`cartera.messaging.batch.record`): every
field of each outcome lands on its own row, and under concurrent recorders (several
connections at once on PostgreSQL) each claim is recorded by its attempt only, once."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from cartera_sdk.channels import SendFailure, Sent
from cartera_sdk.money import Money
from cartera_sdk.testkit import FakeHTTPServer
from sqlalchemy import select, update

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.events.models import OutboxEvent
from cartera.messaging import batch
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.plugins.registry import current_host
from cartera.settings import get_settings
from tests.conftest import TenantClient
from tests.messaging.test_batch import _debtors, _send, _setup
from tests.messaging.test_batch import provider as provider
from tests.messaging.test_sending import RunJobs


async def _claim(t: TenantClient, server: FakeHTTPServer, run_jobs: RunJobs,
                 n: int) -> tuple[list[int], list[batch.Claimed]]:
    """``n`` messages sent once by the app, queued again and claimed by :func:`batch.take`."""
    integration, template = await _setup(t, server)
    ids = await _send(t, await _debtors(t, n), integration, template)
    await run_jobs()
    engine = make_engine(get_settings().database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session:
            await session.execute(update(Interaction).where(Interaction.id.in_(ids))
                                  .values(status="queued", provider_message_id=None,
                                          not_before=None, claimed_until=None))
            await session.commit()
        async with sessionmaker() as session:
            session.info["tenant_id"] = t.tenant_id
            claim = await batch.take(session, current_host(), t.tenant_id, integration, n)
            await session.commit()
    finally:
        await engine.dispose()
    assert len(claim.sends) == n
    return ids, claim.sends


async def _rows(ids: list[int]) -> tuple[dict[int, Interaction], Counter[tuple[int, str]],
                                         Counter[tuple[str, str]]]:
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = {i.id: i for i in await session.scalars(
                select(Interaction).where(Interaction.id.in_(ids)))}
            events = Counter((e.interaction_id, e.status) for e in await session.scalars(
                select(InteractionEvent).where(InteractionEvent.interaction_id.in_(ids))))
            outbox = Counter((o.resource_id, o.type) for o in await session.scalars(
                select(OutboxEvent).where(OutboxEvent.resource_type == "interaction",
                                          OutboxEvent.resource_id.in_([str(i) for i in ids]))))
    finally:
        await engine.dispose()
    return rows, events, outbox


async def test_each_outcome_lands_on_its_own_row(tenant: TenantClient,
                                                 provider: FakeHTTPServer,
                                                 run_jobs: RunJobs) -> None:
    ids, sends = await _claim(tenant, provider, run_jobs, 4)
    outcomes: list[tuple[batch.Claimed, Any]] = [
        (sends[0], Sent(provider_message_id="p-0", cost=Money(Decimal("0.25"), "PEN"))),
        (sends[1], SendFailure(kind="permanent", code="bad_number", reason="no such number")),
        (sends[2], SendFailure(kind="rate_limited", code="429", reason="slow",
                               retry_after_seconds=600)),
        (sends[3], Sent(provider_message_id="p-3"))]
    _, before, _ = await _rows(ids)
    engine = make_engine(get_settings().database_url)
    try:
        counts = await batch.record(make_sessionmaker(engine), outcomes)
    finally:
        await engine.dispose()
    assert counts == {"sent": 2, "failed": 1, "retrying": 1}
    rows, after, _ = await _rows(ids)
    events = after - before
    by_claim = [rows[c.interaction_id] for c in sends]
    assert [(r.status, r.provider_message_id, r.failure_code, r.claimed_until)
            for r in by_claim] == [("sent", "p-0", None, None),
                                   ("failed", None, "bad_number", None),
                                   ("queued", None, None, None), ("sent", "p-3", None, None)]
    assert (by_claim[0].cost_minor, by_claim[0].cost_currency) == (25, "PEN")
    assert by_claim[1].failure_reason == "no such number"
    assert by_claim[2].not_before is not None and by_claim[3].cost_minor is None
    for c, status in zip(sends, ("sent", "failed", "retrying", "sent"), strict=True):
        assert events[(c.interaction_id, status)] == 1


async def test_concurrent_recorders_record_each_claim_once(tenant: TenantClient,
                                                           provider: FakeHTTPServer,
                                                           run_jobs: RunJobs) -> None:
    """Half the claims are taken again meanwhile (attempt 2, as after an expired lease):
    recorders of both attempts race on several connections; only the current attempt's
    outcome is written, once, with one ``sent`` event and one outbox event per message."""
    n = 20
    ids, sends = await _claim(tenant, provider, run_jobs, n)
    retaken = {c.interaction_id for c in sends[::2]}
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(update(Interaction).where(Interaction.id.in_(retaken))
                                  .values(attempts=Interaction.attempts + 1))
            await session.commit()
    finally:
        await engine.dispose()
    current = [c if c.interaction_id not in retaken
               else batch.Claimed(c.tenant_id, c.interaction_id, c.attempt + 1, c.message)
               for c in sends]

    def outcomes(claims: list[batch.Claimed], who: str) -> list[tuple[batch.Claimed, Any]]:
        return [(c, Sent(provider_message_id=f"{who}-{c.interaction_id}-{c.attempt}"))
                for c in claims]

    groups = [outcomes(sends, "old"), outcomes(current, "a"), outcomes(current[::-1], "b"),
              outcomes(sends[::-1], "old2")]
    _, events_before, outbox_before = await _rows(ids)
    engines = [make_engine(get_settings().database_url) for _ in groups]
    try:
        results = await asyncio.gather(*(batch.record(make_sessionmaker(e), g)
                                         for e, g in zip(engines, groups, strict=True)))
    finally:
        for e in engines:
            await e.dispose()
    assert sum(r.get("sent", 0) for r in results) == n
    assert sum(r.get("stale", 0) for r in results) == len(groups) * n - n
    rows, events_after, outbox_after = await _rows(ids)
    events, outbox = events_after - events_before, outbox_after - outbox_before
    assert sum(events.values()) == n and sum(outbox.values()) == n
    for c in current:
        row = rows[c.interaction_id]
        assert row.status == "sent" and row.attempts == c.attempt
        # written by a recorder of the current attempt, never by the superseded one
        who, at = row.provider_message_id.split(f"-{c.interaction_id}-")
        assert int(at) == c.attempt
        if c.interaction_id in retaken:
            assert who in ("a", "b")
        assert events[(c.interaction_id, "sent")] == 1
        assert outbox[(str(c.interaction_id), "interaction.sent")] == 1
