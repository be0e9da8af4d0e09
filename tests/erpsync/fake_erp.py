"""An in-memory ERP connector for the host's sync tests and bench, keeping the SDK's cursor
contract (full pull, then deltas from ``delta_cursor``; closed items reported ``cleared``)
and posting idempotently on the payment's key. One :class:`Ledger` per integration.

Faults are queued per call in :attr:`Ledger.faults`: ``"down"``/``"5xx"`` (retryable
``ProviderError``), ``"timeout"`` (the call hangs past the host's timeout), ``"expired"``
(session expired and not renewable: retryable), ``"repeat"`` (the previous page again),
``"permanent"`` (bad credentials), ``None`` (no fault).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from cartera_sdk import hookimpl
from cartera_sdk.erp import (
    BaseErpConnector,
    ErpDebtor,
    ErpOpenItem,
    ErpPayment,
    ErpPaymentPosting,
    ErpPostingResult,
    ErpRowError,
    ErpStream,
    Page,
)
from cartera_sdk.errors import PermanentError, RetryableError
from cartera_sdk.money import Money

NAME = "fake_erp"


@dataclass
class Ledger:
    """One ERP's data. Mutate through :meth:`put_debtor`, :meth:`put_item`... (they stamp
    the change for deltas)."""

    clock: int = 0
    debtors: dict[str, ErpDebtor] = field(default_factory=dict)
    items: dict[str, ErpOpenItem] = field(default_factory=dict)
    payments: dict[str, ErpPayment] = field(default_factory=dict)
    bad_rows: dict[str, ErpRowError] = field(default_factory=dict)
    """Rows the connector could not map, reported in the page of their stream's key order."""
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    faults: list[str | None] = field(default_factory=list)
    pulls: list[tuple[str, str | None]] = field(default_factory=list)
    posted: dict[str, tuple[str, ErpPaymentPosting]] = field(default_factory=dict)
    post_calls: int = 0
    post_fault: str | None = None
    """``down`` (not posted, retryable), ``lost`` (posted, then the answer lost: retryable),
    ``reject`` (refused)."""
    page_delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _last_page: dict[str, Page[Any]] = field(default_factory=dict)
    _ordered: dict[str, list[str]] = field(default_factory=dict)
    _selection: dict[str, tuple[Any, list[str]]] = field(default_factory=dict)

    def _stamp(self, stream: str, key: str) -> None:
        self.clock += 1
        self.versions[(stream, key)] = self.clock
        self._ordered.pop(stream, None)

    def put_debtor(self, d: ErpDebtor) -> None:
        self.debtors[d.external_id] = d
        self._stamp("debtors", d.external_id)

    def put_item(self, item: ErpOpenItem) -> None:
        self.items[item.external_id] = item
        self._stamp("open_items", item.external_id)

    def put_payment(self, p: ErpPayment) -> None:
        self.payments[p.external_id] = p
        self._stamp("payments", p.external_id)

    def put_bad_row(self, stream: str, error: ErpRowError) -> None:
        assert error.row_key
        self.bad_rows[f"{stream}:{error.row_key}"] = error
        self._stamp(stream, error.row_key)

    def clear_item(self, key: str, status: str = "cleared") -> None:
        item = self.items[key]
        self.put_item(ErpOpenItem(**{**_fields(item), "status": status,
                                     "open_amount": Money(Decimal(0), item.open_amount.currency)}))

    def delete_item(self, key: str) -> None:
        del self.items[key]
        self.versions.pop(("open_items", key), None)
        self._ordered.pop("open_items", None)

    # --- paging -------------------------------------------------------------------------

    def _rows(self, stream: str) -> dict[str, Any]:
        rows: dict[str, Any] = {"debtors": self.debtors, "open_items": self.items,
                                "payments": self.payments}[stream]
        return rows

    def _keys(self, stream: str) -> list[str]:
        if stream not in self._ordered:
            keys = set(self._rows(stream)) | {k.split(":", 1)[1] for k in self.bad_rows
                                              if k.startswith(stream + ":")}
            self._ordered[stream] = sorted(keys)
        return self._ordered[stream]

    def page(self, stream: str, cursor: str | None, limit: int) -> Page[Any]:
        self.pulls.append((stream, cursor))
        fault = self.faults.pop(0) if self.faults else None
        if fault in ("down", "5xx", "expired"):
            raise RetryableError("erp_unavailable", f"fake ERP: {fault}", status_code=503)
        if fault == "permanent":
            raise PermanentError("bad_credentials", "fake ERP: login refused", status_code=401)
        if fault == "repeat" and stream in self._last_page:
            return self._last_page[stream]
        state = json.loads(cursor) if cursor else {"m": "full", "since": 0, "off": 0,
                                                   "stamp": None}
        if state["stamp"] is None:
            state["stamp"] = self.clock
        since, stamp, off = state["since"], state["stamp"], state["off"]
        keys = self._keys(stream)
        rows = self._rows(stream)
        if state["m"] == "full":
            def wanted(k: str) -> bool:
                item = rows.get(k)
                if stream == "open_items" and item is not None and item.status != "open":
                    return False
                return self.versions.get((stream, k), 0) <= stamp
        else:
            def wanted(k: str) -> bool:
                return since < self.versions.get((stream, k), 0) <= stamp
        memo = (stream, state["m"], since, stamp, len(keys), self.clock)
        if self._selection.get(stream, (None, []))[0] != memo:
            self._selection[stream] = (memo, [k for k in keys if wanted(k)])
        selected = self._selection[stream][1]
        window = selected[off:off + limit]
        items = [rows[k] for k in window if k in rows]
        errors = [self.bad_rows[f"{stream}:{k}"] for k in window
                  if f"{stream}:{k}" in self.bad_rows]
        more = off + limit < len(selected)
        page: Page[Any] = Page(
            items=items, errors=errors,
            next_cursor=json.dumps({**state, "off": off + limit}) if more else None,
            delta_cursor=None if more else json.dumps({"m": "delta", "since": stamp, "off": 0,
                                                       "stamp": None}))
        self._last_page[stream] = page
        return page


def _fields(struct: Any) -> dict[str, Any]:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}


class FakeErpConnector(BaseErpConnector):
    name: ClassVar[str] = NAME
    streams: ClassVar[frozenset[ErpStream]] = frozenset({"debtors", "open_items", "payments"})

    def __init__(self) -> None:
        self.ledgers: dict[str, Ledger] = {}
        self.closed = 0

    def ledger(self, integration_id: int | str) -> Ledger:
        return self.ledgers.setdefault(str(integration_id), Ledger())

    async def _page(self, stream: str, cursor: str | None, limit: int, ctx: Any) -> Page[Any]:
        ledger = self.ledger(ctx.integration_id)
        if ledger.faults and ledger.faults[0] == "timeout":
            ledger.faults.pop(0)
            await asyncio.sleep(30)
        if ledger.page_delay:
            await asyncio.sleep(ledger.page_delay)
        with ledger.lock:
            return ledger.page(stream, cursor, limit)

    async def pull_debtors(self, cursor: str | None, limit: int, ctx: Any) -> Page[ErpDebtor]:
        return await self._page("debtors", cursor, limit, ctx)

    async def pull_open_items(self, cursor: str | None, limit: int,
                              ctx: Any) -> Page[ErpOpenItem]:
        return await self._page("open_items", cursor, limit, ctx)

    async def pull_payments(self, cursor: str | None, limit: int,
                            ctx: Any) -> Page[ErpPayment]:
        return await self._page("payments", cursor, limit, ctx)

    async def post_payment(self, posting: ErpPaymentPosting, ctx: Any) -> ErpPostingResult:
        ledger = self.ledger(ctx.integration_id)
        with ledger.lock:
            ledger.post_calls += 1
            if posting.idempotency_key in ledger.posted:
                return ErpPostingResult(status="duplicate",
                                        erp_document_id=ledger.posted[posting.idempotency_key][0])
            fault, ledger.post_fault = ledger.post_fault, None
            if fault == "down":
                raise RetryableError("erp_unavailable", "fake ERP down", status_code=503)
            if fault == "reject":
                return ErpPostingResult(status="rejected",
                                        message="Invoice INV-1 is already closed")
            doc = f"RCT-{len(ledger.posted) + 1}"
            ledger.posted[posting.idempotency_key] = (doc, posting)
            for allocation in posting.allocations:  # the ERP clears what was applied
                item = ledger.items.get(allocation.open_item_external_id)
                if item is None:
                    continue
                left = item.open_amount.amount - allocation.amount.amount
                ledger.put_item(ErpOpenItem(**{
                    **_fields(item), "open_amount": Money(max(left, Decimal(0)),
                                                          item.open_amount.currency),
                    "status": "cleared" if left <= 0 else "open"}))
            if fault == "lost":
                raise RetryableError("timeout", "the answer was lost", status_code=504)
            return ErpPostingResult(status="posted", erp_document_id=doc)

    async def close(self, ctx: Any) -> None:
        self.closed += 1


class FakeErpPlugin:
    def __init__(self, connector: FakeErpConnector) -> None:
        self.connector = connector

    @hookimpl
    def register_erp_connectors(self, register: Any) -> None:
        register(self.connector)


def install(host: Any) -> FakeErpConnector:
    """The fake connector on ``host`` (registered once per host)."""
    found = host.provider("erp", NAME)
    if found is not None:
        connector: FakeErpConnector = found.provider
        return connector
    connector = FakeErpConnector()
    host.add_plugin(FakeErpPlugin(connector), "fake_erp_plugin")
    return connector


def debtor(key: str, name: str = "Cliente", **kw: Any) -> ErpDebtor:
    return ErpDebtor(external_id=key, name=f"{name} {key}", country=kw.pop("country", "PE"),
                     **kw)


def item(key: str, debtor_key: str, amount: str, *, open_amount: str | None = None,
         currency: str = "PEN", due: date = date(2026, 11, 1), kind: str = "invoice",
         status: str = "open") -> ErpOpenItem:
    return ErpOpenItem(external_id=key, debtor_external_id=debtor_key, document_number=key,
                       kind=kind,  # type: ignore[arg-type]
                       issue_date=due - timedelta(days=30), due_date=due,
                       original_amount=Money(Decimal(amount), currency),
                       open_amount=Money(Decimal(open_amount if open_amount is not None
                                                 else amount), currency),
                       status=status,  # type: ignore[arg-type]
                       updated_at=datetime(2026, 11, 1, 12, 0))


def payment(key: str, debtor_key: str, item_key: str, amount: str, document: str,
            currency: str = "PEN") -> ErpPayment:
    return ErpPayment(external_id=key, debtor_external_id=debtor_key,
                      open_item_external_id=item_key, document_id=document,
                      amount=Money(Decimal(amount), currency), value_date=date(2026, 11, 20))
