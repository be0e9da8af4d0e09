"""Recording audit entries in the caller's transaction, and listing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.audit import schemas
from cartera.audit.models import AuditEntry
from cartera.errors import Invalid
from cartera.events.outbox import from_audit


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object,
    changes: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session; it commits (or rolls back) with the change itself,
    and so does the outbound event the action gives ISVs, if any (:mod:`cartera.events`)."""
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
    from_audit(session, actor.tenant_id, action, resource_type, str(resource_id), changes or {})


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list: of one object (``resource_type``, optionally with its
    ``resource_id``), by one ``actor``, at or after ``at_from`` and before ``at_to``."""

    resource_type: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    at_from: datetime | None = None
    at_to: datetime | None = None

    def check(self) -> None:
        """422 naming the parameter for a filter that can match nothing by construction."""
        if self.actor is not None and not 1 <= len(self.actor) <= 200:
            raise Invalid("actor is 1 to 200 characters", code="invalid_value", param="actor")
        if self.resource_id is not None and self.resource_type is None:
            raise Invalid("resource_id names an object of a type: give resource_type too",
                          code="missing_resource_type", param="resource_id")
        for name in ("at_from", "at_to"):
            value: datetime | None = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise Invalid(f"{name} must carry a time zone (e.g. 2026-03-01T00:00:00Z)",
                              code="naive_datetime", param=name)
        if self.at_from and self.at_to and self.at_from >= self.at_to:
            raise Invalid("at_from must be before at_to", code="empty_range", param="at_to")

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        a = AuditEntry
        conditions = [col == value for col, value in (
            (a.resource_type, self.resource_type), (a.resource_id, self.resource_id),
            (a.actor, self.actor)) if value is not None]
        if self.at_from is not None:
            conditions.append(a.at >= self.at_from)
        if self.at_to is not None:
            conditions.append(a.at < self.at_to)
        return stmt.where(*conditions)


def entries(tenant_id: int, found: AuditFilter) -> Select[Any]:
    """The tenant's entries matching ``found`` (checked first), for :func:`paginate`."""
    found.check()
    return found.apply(select(AuditEntry).where(AuditEntry.tenant_id == tenant_id))


def entry_out(a: AuditEntry) -> schemas.AuditEntryOut:
    return schemas.AuditEntryOut(id=a.id, at=a.at, actor=a.actor, client_id=a.client_id,
                                 request_id=a.request_id, action=a.action,
                                 resource_type=a.resource_type, resource_id=a.resource_id,
                                 changes=dict(a.changes))
