"""Recording audit entries in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.audit.models import AuditEntry


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object,
    changes: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session; it commits (or rolls back) with the change itself."""
    session.add(
        AuditEntry(
            tenant_id=actor.tenant_id,
            actor=actor.name,
            client_id=actor.client_id,
            request_id=actor.request_id,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            changes=changes or {},
        )
    )
