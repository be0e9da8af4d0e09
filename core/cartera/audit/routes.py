"""HTTP routes: /v1/audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.audit import schemas, service
from cartera.audit.models import AuditEntry

ResourceType = Annotated[str | None, Parameter(
    min_length=1, max_length=64, description="Only entries about objects of this type "
                                             "(``debtor``, ``obligation``, ``payment``...).")]
ResourceId = Annotated[str | None, Parameter(
    min_length=1, max_length=64, description="With ``resource_type``: only that object's.")]
# Named ``actor_name`` in Python (``actor`` is the caller's dependency); its length is
# checked by AuditFilter so that a 422 names the query parameter.
ActorName = Annotated[str | None, Parameter(
    query="actor", description="Only changes by this actor (``client:<client id>``...), "
                               "1 to 200 characters.")]
AtFrom = Annotated[datetime | None, Parameter(
    description="Only entries at or after this instant (with a time zone).")]
AtTo = Annotated[datetime | None, Parameter(
    description="Only entries before this instant (with a time zone).")]


@get("/v1/audit", summary="List audit entries", operation_id="ListAuditEntries",
     tags=["Audit"], **secured("audit:read"))
async def audit_entries(session: AsyncSession, actor: Actor, limit: Limit = 50,
                        starting_after: StartingAfter = None,
                        resource_type: ResourceType = None, resource_id: ResourceId = None,
                        actor_name: ActorName = None,
                        at_from: AtFrom = None, at_to: AtTo = None,
                        ) -> Page[schemas.AuditEntryOut]:
    """The tenant's audit trail in id order (oldest first): who changed what and when,
    through which client and request, with the changes. Filter by object, actor and time;
    a filter that is malformed or can match nothing by construction is a 422 naming it."""
    found = service.AuditFilter(resource_type, resource_id, actor_name, at_from, at_to)
    stmt = paginate(service.entries(actor.tenant_id, found), AuditEntry.id, limit,
                    starting_after)
    rows = (await session.scalars(stmt)).all()
    return page_of(rows, limit, service.entry_out)
