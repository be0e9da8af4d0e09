"""Events of segment and stage moves, set-based: one ``INSERT ... SELECT`` per part.

A segmentation pass writes one ``placement_history`` row per debtor that moved (thousands
at once); the pass calls :func:`record_moves` with the id range it wrote, in its own
transaction, so the events commit (or roll back) with the moves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera.events.outbox import insert_from_select
from cartera.segmentation.models import PlacementMove, Stage


def json_object(session: AsyncSession, **fields: Any) -> Any:
    """A SQL JSON object of ``fields`` (name -> column), on either dialect."""
    build = (func.jsonb_build_object if session.get_bind().dialect.name == "postgresql"
             else func.json_object)
    return build(*(part for name, col in fields.items() for part in (literal(name), col)))


async def record_moves(session: AsyncSession, tenant_id: int, after_id: int, last_id: int,
                       at: datetime, actor: str) -> None:
    """``debtor.stage_changed`` and ``debtor.segment_changed`` for the history rows of the
    pass of ``at`` and ``actor`` with ids in ``(after_id, last_id]``."""
    h, src, dst = PlacementMove, aliased(Stage), aliased(Stage)
    mine = (h.id > after_id, h.id <= last_id, h.tenant_id == tenant_id, h.at == at,
            h.actor == actor)
    stage: Select[Any] = (
        select(h.tenant_id, literal("debtor.stage_changed"), literal("debtor"),
               cast(h.debtor_id, String), h.debtor_id,
               json_object(session, previous_stage=src.code, stage=dst.code,
                           manual=h.manual, reason=h.reason))
        .outerjoin(src, src.id == h.from_stage_id).join(dst, dst.id == h.to_stage_id)
        .where(*mine).order_by(h.id))
    segment: Select[Any] = (
        select(h.tenant_id, literal("debtor.segment_changed"), literal("debtor"),
               cast(h.debtor_id, String), h.debtor_id,
               json_object(session, previous_segment_id=h.from_segment_id,
                           segment_id=h.to_segment_id))
        .where(*mine, h.to_segment_id.is_not(None)).order_by(h.id))
    await insert_from_select(session, stage)
    await insert_from_select(session, segment)
