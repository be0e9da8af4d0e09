"""HTTP routes of the ERP sync, under an integration: settings, on-demand runs, run history,
row errors, and the write-back postings."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, app_context
from cartera.api.etag import IfMatch, check_content, with_content_etag
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.audit import service as audit
from cartera.erpsync import jobs as _jobs  # noqa: F401  (registers the job kinds)
from cartera.erpsync import schemas, sync
from cartera.erpsync.models import ErpPosting, ErpSyncRowError, ErpSyncRun, ErpSyncSettings
from cartera.errors import Conflict, Invalid
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.tenants.models import Tenant

READ = secured("integrations:read")
WRITE = secured("integrations:write")


def _run_out(run: ErpSyncRun) -> schemas.SyncRunOut:
    return schemas.SyncRunOut(
        id=run.id, integration_id=run.integration_id, job_id=run.job_id, trigger=run.trigger,
        full=run.full, status=run.status, rows_in=run.rows_in, rows_changed=run.rows_changed,
        rows_failed=run.rows_failed, rows_closed=run.rows_closed,
        payments_matched=run.payments_matched, pages=run.pages, error=run.error,
        cursors=dict(run.cursors), created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at)


def _settings_out(integration_id: int, s: ErpSyncSettings | None) -> schemas.SyncSettingsOut:
    if s is None:
        return schemas.SyncSettingsOut(integration_id=integration_id, every_minutes=None,
                                       at_times=[], page_size=sync.DEFAULT_PAGE_SIZE,
                                       write_back=False, write_back_since=None,
                                       next_run_at=None)
    return schemas.SyncSettingsOut(integration_id=integration_id, every_minutes=s.every_minutes,
                                   at_times=list(s.at_times), page_size=s.page_size,
                                   write_back=s.write_back, write_back_since=s.write_back_since,
                                   next_run_at=s.next_run_at)


async def _erp(session: AsyncSession, integration_id: int) -> Integration:
    integration = await integrations.get(session, integration_id)
    if integration.provider_kind != "erp":
        raise Invalid("this integration is not an ERP connector", code="not_an_erp_integration",
                      param="integration_id")
    return integration


SyncId = Annotated[int | None, Parameter(ge=1, description="Only this sync run's errors.")]
PostingStatus = Annotated[str | None, Parameter(
    pattern="^(pending|posted|rejected)$", description="Only postings in this state.")]


class ErpSyncController(Controller):
    path = "/v1/integrations"
    tags = ["ERP sync"]

    @get("/{integration_id:int}/sync-settings", summary="Get an ERP integration's sync settings",
         operation_id="GetSyncSettings", **READ)
    async def get_settings(self, integration_id: int,
                           session: AsyncSession) -> Response[schemas.SyncSettingsOut]:
        """Schedule, page size and write-back (the defaults until set: on demand only, no
        write-back), with the `ETag` for `If-Match` on the `PUT`."""
        await integrations.get(session, integration_id)
        return with_content_etag(
            _settings_out(integration_id, await session.get(ErpSyncSettings, integration_id)))

    @put("/{integration_id:int}/sync-settings", summary="Set an ERP integration's sync settings",
         operation_id="SetSyncSettings", **WRITE)
    async def put_settings(self, integration_id: int, data: schemas.SyncSettingsIn,
                           session: AsyncSession, actor: Actor, if_match: IfMatch = None,
                           ) -> Response[schemas.SyncSettingsOut]:
        """Runs are queued every ``every_minutes`` and at each of ``at_times`` (``HH:MM`` in
        the tenant's time zone). Switching ``write_back`` on posts the payments recorded
        from then on (earlier payments are history the ERP already has). `If-Match` (the
        `ETag` of your read): only if no one changed them since, else 412."""
        integration = await _erp(session, integration_id)
        now = clock.now()
        s = await session.get(ErpSyncSettings, integration_id,
                              with_for_update=True if if_match is not None else None)
        check_content(if_match, _settings_out(integration_id, s))
        if s is None:
            s = ErpSyncSettings(tenant_id=actor.tenant_id, integration_id=integration.id,
                                at_times=[], write_back=False)
            session.add(s)
        tz = await session.scalar(select(Tenant.timezone).where(Tenant.id == actor.tenant_id))
        s.every_minutes, s.at_times, s.page_size = (data.every_minutes,
                                                    sorted(set(data.at_times)), data.page_size)
        if data.write_back and not s.write_back:
            s.write_back_since = now
        s.write_back = data.write_back
        s.next_run_at = sync.next_run_after(now, s.every_minutes, list(s.at_times), tz or "UTC")
        s.updated_at = now
        await session.flush()
        audit.record(session, actor, "erp_sync.settings_changed", "integration", integration.id,
                     {"every_minutes": s.every_minutes, "at_times": s.at_times,
                      "page_size": s.page_size, "write_back": s.write_back})
        return with_content_etag(_settings_out(integration_id, s))

    @post("/{integration_id:int}/sync", summary="Sync an ERP integration now",
          operation_id="StartSync", status_code=202, **WRITE)
    async def start(self, request: Request[Any, Any, Any], integration_id: int,
                    session: AsyncSession, actor: Actor,
                    data: schemas.SyncRequest | None = None) -> schemas.SyncRunOut:
        """Queue a sync run (a job with progress): the changes since the last run, or, with
        ``full``, everything. 409 ``sync_in_progress`` while a run of the integration is
        queued, running or retrying. Send an ``Idempotency-Key``."""
        integration = await _erp(session, integration_id)
        if not integration.enabled:
            raise Conflict("the integration is disabled", code="integration_disabled")
        if (active := await sync.active_run(session, integration.id)) is not None:
            raise Conflict(f"sync run {active.id} of this integration is {active.status}",
                           code="sync_in_progress")
        run = await sync.queue_run(session, app_context(request).jobs, integration,
                                   trigger="manual", full=bool(data and data.full), actor=actor)
        audit.record(session, actor, "erp_sync.requested", "erp_sync_run", run.id,
                     {"integration_id": integration.id, "full": run.full})
        return _run_out(run)

    @get("/{integration_id:int}/syncs", summary="List an ERP integration's sync runs",
         operation_id="ListSyncs", **READ)
    async def runs(self, integration_id: int, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None) -> Page[schemas.SyncRunOut]:
        """Run history in id order: when it started and finished, rows in, changed, failed
        and closed, payments matched, the error of a failed or retrying run, the cursors."""
        await integrations.get(session, integration_id)
        rows = (await session.scalars(paginate(
            select(ErpSyncRun).where(ErpSyncRun.integration_id == integration_id),
            ErpSyncRun.id, limit, starting_after))).all()
        return page_of(rows, limit, _run_out)

    @get("/{integration_id:int}/sync-errors", summary="List the rows sync runs did not apply",
         operation_id="ListSyncErrors", **READ)
    async def errors(self, integration_id: int, session: AsyncSession, sync_id: SyncId = None,
                     limit: Limit = 20, starting_after: StartingAfter = None
                     ) -> Page[schemas.SyncRowErrorOut]:
        """Row errors (the connector's, and the import's rules: ``unknown_debtor``,
        ``unknown_currency``...), with the stream and the ERP's key of the row."""
        await integrations.get(session, integration_id)
        stmt = select(ErpSyncRowError).join(ErpSyncRun, ErpSyncRun.id == ErpSyncRowError.run_id
                                            ).where(ErpSyncRun.integration_id == integration_id)
        if sync_id is not None:
            stmt = stmt.where(ErpSyncRowError.run_id == sync_id)
        rows = (await session.scalars(paginate(stmt, ErpSyncRowError.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, lambda e: schemas.SyncRowErrorOut(
            id=e.id, sync_id=e.run_id, stream=e.stream, row_key=e.row_key, field=e.field,
            code=e.code, reason=e.reason, severity=e.severity))

    @get("/{integration_id:int}/postings", summary="List payments posted back to the ERP",
         operation_id="ListErpPostings", **READ)
    async def postings(self, integration_id: int, session: AsyncSession,
                       status: PostingStatus = None, payment_id: SyncId = None,
                       limit: Limit = 20, starting_after: StartingAfter = None
                       ) -> Page[schemas.PostingOut]:
        """One posting per payment: ``pending`` (with why the last attempt failed, retried
        with backoff), ``posted`` with the ERP's document id, or ``rejected`` with the
        ERP's message."""
        await integrations.get(session, integration_id)
        stmt = select(ErpPosting).where(ErpPosting.integration_id == integration_id)
        if status is not None:
            stmt = stmt.where(ErpPosting.status == status)
        if payment_id is not None:
            stmt = stmt.where(ErpPosting.payment_id == payment_id)
        rows = (await session.scalars(paginate(stmt, ErpPosting.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, lambda p: schemas.PostingOut(
            id=p.id, integration_id=p.integration_id, payment_id=p.payment_id, status=p.status,
            erp_document_id=p.erp_document_id, message=p.message, attempts=p.attempts,
            next_attempt_at=p.next_attempt_at if p.status == "pending" else None,
            created_at=p.created_at, posted_at=p.posted_at,
            last_attempt_at=p.last_attempt_at))


ROUTES = [ErpSyncController]
