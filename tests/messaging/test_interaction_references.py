"""The references of interactions and their events (migration 0048): the tenant of both is
checked through their parent's composite key, so an interaction never names another
tenant's debtor and an event is always of its interaction's tenant; a debtor's deletion
still takes their interactions and events; a receipt's provider id index is partial."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.db.base import table_of
from cartera.messaging.models import Interaction, InteractionEvent
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _interaction(tenant_id: int, debtor_id: int | None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "debtor_id": debtor_id, "direction": "inbound",
            "channel": "sms", "status": "received", "address": "+51987000111",
            "obligation_ids": [], "trigger": {"source": "webhook"}, "variables": {},
            "created_at": NOW, "updated_at": NOW}


def _event(tenant_id: int, interaction_id: int) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "interaction_id": interaction_id, "status": "received",
            "at": NOW, "source": "webhook", "detail": {}}


async def _add(session: AsyncSession, model: Any, row: dict[str, Any]) -> int:
    t = table_of(model)
    return int((await session.execute(insert(t).returning(t.c.id), [row])).scalar_one())


async def _refused(session: AsyncSession, model: Any, row: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        await _add(session, model, row)
        await session.commit()
    await session.rollback()


async def test_an_interaction_names_a_debtor_of_its_own_tenant(
        tenant: TenantClient, make_tenant: Callable[..., Awaitable[TenantClient]],
        app: Litestar) -> None:
    other = await make_tenant()
    mine = await late_debtor(tenant, "REF1")
    theirs = await late_debtor(other, "REF2")
    async with app.state.ctx.sessionmaker() as session:
        # Before migration 0048 the debtor's reference was to debtors (id) alone.
        await _refused(session, Interaction, _interaction(tenant.tenant_id, theirs))
        await _refused(session, Interaction, _interaction(-1, None) | {"debtor_id": mine})
        made = await _add(session, Interaction, _interaction(tenant.tenant_id, mine))
        unknown = await _add(session, Interaction, _interaction(tenant.tenant_id, None))
        await session.commit()  # a reply from an unknown sender has no debtor
        assert made and unknown


async def test_an_event_is_of_its_interactions_tenant(
        tenant: TenantClient, make_tenant: Callable[..., Awaitable[TenantClient]],
        app: Litestar) -> None:
    other = await make_tenant()
    debtor = await late_debtor(tenant, "REF1")
    async with app.state.ctx.sessionmaker() as session:
        made = await _add(session, Interaction, _interaction(tenant.tenant_id, debtor))
        unknown = await _add(session, Interaction, _interaction(tenant.tenant_id, None))
        await session.commit()
        for interaction_id in (made, unknown):
            # Before migration 0048 any existing tenant would do.
            await _refused(session, InteractionEvent, _event(other.tenant_id, interaction_id))
        await _refused(session, InteractionEvent, _event(tenant.tenant_id, made + unknown))
        for interaction_id in (made, unknown):
            await _add(session, InteractionEvent, _event(tenant.tenant_id, interaction_id))
        await session.commit()


async def test_a_debtors_deletion_takes_their_interactions_and_events(
        tenant: TenantClient, app: Litestar) -> None:
    gone = await late_debtor(tenant, "REF1")
    kept = await late_debtor(tenant, "REF2")
    i, e = table_of(Interaction), table_of(InteractionEvent)
    async with app.state.ctx.sessionmaker() as session:
        for debtor in (gone, kept, None):
            made = await _add(session, Interaction, _interaction(tenant.tenant_id, debtor))
            await _add(session, InteractionEvent, _event(tenant.tenant_id, made))
        await session.commit()
        await session.execute(text("DELETE FROM debtors WHERE id = :d"), {"d": gone})
        await session.commit()
        left = (await session.execute(select(i.c.debtor_id, func.count(e.c.id)).join(
            e, e.c.interaction_id == i.c.id).where(i.c.tenant_id == tenant.tenant_id)
            .group_by(i.c.debtor_id))).all()
    assert sorted(left, key=str) == sorted([(kept, 1), (None, 1)], key=str)


async def test_the_provider_message_index_holds_only_sent_messages(app: Litestar) -> None:
    """A queued message has no provider id yet: it gets no entry in the index receipts
    are looked up by (equality on the id, which the partial index serves)."""
    async with app.state.ctx.sessionmaker() as session:
        if session.get_bind().dialect.name == "postgresql":
            found = await session.scalar(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = "
                "'ix_interactions_provider_message'"))
        else:
            found = await session.scalar(text(
                "SELECT sql FROM sqlite_master WHERE name = "
                "'ix_interactions_provider_message'"))
    assert found is not None
    assert "provider_message_id IS NOT NULL" in " ".join(str(found).split()).replace(
        "(provider_message_id IS NOT NULL)", "provider_message_id IS NOT NULL")
