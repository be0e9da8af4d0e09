"""HTTP routes: /v1/promises and /v1/arrangements."""

from __future__ import annotations

from litestar import Controller, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.negotiation import schemas, service
from cartera.negotiation.models import Arrangement, Promise

READ = secured("negotiation:read")
WRITE = secured("negotiation:write")


class PromiseController(Controller):
    path = "/v1/promises"
    tags = ["Negotiation"]

    @post("/", summary="Record a promise to pay", operation_id="CreatePromise", **WRITE)
    async def create(self, data: schemas.PromiseCreate, session: AsyncSession,
                     actor: Actor) -> schemas.PromiseOut:
        """A debtor's promise to pay ``amount`` by ``promised_date`` (today or later in the
        tenant's time zone). It is **kept** as soon as the debtor's payments (not reversed,
        in that currency) dated from the day it was made through the promised date add up
        to the amount, and **broken** once the promised date has passed without that;
        recording or reversing a payment updates it at once, and a job checks due promises
        every minute (plugins observing ``on_promise_broken`` hear of each broken one). The
        debtor is re-segmented in the same transaction."""
        return service.promise_out(await service.create_promise(session, actor, data))

    @get("/", summary="List promises to pay", operation_id="ListPromises", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    status: schemas.PromiseStatus | None = None,
                    ) -> Page[schemas.PromiseOut]:
        """Promises in id order."""
        stmt = service.listing(Promise, debtor_id, status)
        rows = (await session.scalars(paginate(stmt, Promise.id, limit, starting_after))).all()
        return page_of(rows, limit, service.promise_out)

    @get("/{promise_id:int}", summary="Get a promise to pay", operation_id="GetPromise",
         **READ)
    async def retrieve(self, promise_id: Id, session: AsyncSession) -> schemas.PromiseOut:
        """One promise with what has been paid toward it."""
        return service.promise_out(await service.get_promise(session, promise_id))

    @post("/{promise_id:int}/cancel", summary="Cancel a promise to pay",
          operation_id="CancelPromise", status_code=200, **WRITE)
    async def cancel(self, promise_id: Id, session: AsyncSession, actor: Actor,
                     data: schemas.Cancel | None = None) -> schemas.PromiseOut:
        """Cancel a pending promise (409 ``promise_not_pending`` when it is already kept,
        broken or cancelled). The debtor is re-segmented in the same transaction."""
        return service.promise_out(
            await service.cancel_promise(session, actor, promise_id, data.reason if data else None))


class ArrangementController(Controller):
    path = "/v1/arrangements"
    tags = ["Negotiation"]

    @post("/", summary="Create an installment plan", operation_id="CreateArrangement",
          **WRITE)
    async def create(self, data: schemas.ArrangementCreate, session: AsyncSession,
                     actor: Actor) -> schemas.ArrangementOut:
        """An installment plan (acuerdo de pagos) in one currency: at least one installment,
        due dates strictly increasing and the first today or later, amounts positive. It is
        **completed** when the debtor's payments (not reversed, in that currency) dated from
        the day it was made reach the total, and **broken** when an installment is more than
        ``grace_days`` (5) past due and the payments dated up to then do not cover it and
        the earlier ones. The debtor is re-segmented in the same transaction."""
        plan = await service.create_arrangement(session, actor, data)
        return (await service.arrangements_out(session, [plan]))[0]

    @get("/", summary="List installment plans", operation_id="ListArrangements", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    status: schemas.ArrangementStatus | None = None,
                    ) -> Page[schemas.ArrangementOut]:
        """Installment plans in id order, with their installments."""
        stmt = service.listing(Arrangement, debtor_id, status)
        rows = (await session.scalars(paginate(stmt, Arrangement.id, limit,
                                               starting_after))).all()
        page = page_of(rows, limit, lambda a: a)
        page.data = await service.arrangements_out(session, page.data)
        return page

    @get("/{arrangement_id:int}", summary="Get an installment plan",
         operation_id="GetArrangement", **READ)
    async def retrieve(self, arrangement_id: Id,
                       session: AsyncSession) -> schemas.ArrangementOut:
        """One plan with its installments and what has been paid toward it."""
        plan = await service.get_arrangement(session, arrangement_id)
        return (await service.arrangements_out(session, [plan]))[0]

    @post("/{arrangement_id:int}/cancel", summary="Cancel an installment plan",
          operation_id="CancelArrangement", status_code=200, **WRITE)
    async def cancel(self, arrangement_id: Id, session: AsyncSession, actor: Actor,
                     data: schemas.Cancel | None = None) -> schemas.ArrangementOut:
        """Cancel an active plan (409 ``arrangement_not_active`` otherwise). The debtor is
        re-segmented in the same transaction."""
        plan = await service.cancel_arrangement(session, actor, arrangement_id,
                                                data.reason if data else None)
        return (await service.arrangements_out(session, [plan]))[0]


ROUTES = [PromiseController, ArrangementController]
