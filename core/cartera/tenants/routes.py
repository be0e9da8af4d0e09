"""``/v1/tenants``: platform operators (scope ``platform:admin``, granted only by
``cartera clients create --platform``) list, create and read tenants."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.pagination import Id, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.errors import NotFound
from cartera.tenants import schemas
from cartera.tenants.models import Tenant
from cartera.tenants.service import create_tenant

PLATFORM = secured("platform:admin")


def out(tenant: Tenant) -> schemas.TenantOut:
    return schemas.TenantOut(id=tenant.id, slug=tenant.slug, name=tenant.name,
                             country=tenant.country, default_currency=tenant.default_currency,
                             timezone=tenant.timezone, created_at=tenant.created_at)


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["Tenants"]

    @get("/", summary="List tenants", operation_id="ListTenants", **PLATFORM)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None) -> Page[schemas.TenantOut]:
        """Every tenant of the deployment, in id order."""
        rows = (await session.scalars(paginate(select(Tenant), Tenant.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, out)

    @post("/", summary="Create a tenant", operation_id="CreateTenant", **PLATFORM)
    async def create(self, data: schemas.TenantCreate, session: AsyncSession
                     ) -> Response[schemas.TenantOut]:
        """A new tenant with its default stages; its clients are made with
        ``cartera clients create --tenant`` (409 ``already_exists`` for a taken slug)."""
        tenant = await create_tenant(session, slug=data.slug, name=data.name,
                                     country=data.country, currency=data.default_currency,
                                     timezone=data.timezone)
        return Response(out(tenant), status_code=201,
                        headers={"Location": f"/v1/tenants/{tenant.id}"})

    @get("/{tenant_id:int}", summary="Get a tenant", operation_id="GetTenant", **PLATFORM)
    async def retrieve(self, tenant_id: Id, session: AsyncSession) -> schemas.TenantOut:
        """One tenant (404 when there is none with this id)."""
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}", param="tenant_id")
        return out(tenant)
