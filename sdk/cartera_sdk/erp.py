"""ERP connector contract: page debtors and open items out of an ERP, post payments back.

Streams. A connector serves the streams named in ``streams``: ``debtors`` and
``open_items`` always, ``payments`` (payments and clearings the ERP recorded itself) when it
can read them back. The host keeps one cursor per integration and stream.

Cursors. Every pull takes an opaque ``cursor`` and returns a :class:`Page`:

* ``cursor=None`` starts a full pull. Each page carries ``next_cursor`` (``None`` on the
  last page) that the host stores after applying the page and passes back, so a crash
  resumes at the first page not applied (SAP OData ``$skiptoken``/``__next``, Business One
  ``odata.nextLink``).
* The last page of a run also carries ``delta_cursor``: passed as ``cursor`` in the next
  run, the pull returns only what changed since the current run started (new and changed
  rows, and rows that closed: open items with ``status`` ``cleared`` or ``cancelled``), then
  again pages to a new ``delta_cursor``. A row may come again in a later page or run (the
  host's upsert is idempotent); a change is never skipped.
* Cursors are opaque strings; the host never parses them. Passing a cursor back to the same
  connector with the same config must continue exactly after the rows already returned.

Row errors. A row the ERP sent that cannot be mapped (a missing field, a malformed amount,
a currency Cartera does not know) is reported in ``Page.errors`` as an
:class:`ErpRowError`, never raised: the other rows of the page still count and the cursor
still advances. A failure of the call itself raises a
:class:`~cartera_sdk.errors.ProviderError` (``retryable`` for 5xx, timeouts and ERP
outages, ``rate_limited``, or ``permanent`` for bad credentials or config); the host then
keeps the cursor it had, so nothing is applied twice or half.

Money. Amounts are exact :class:`~cartera_sdk.money.Money` values, never floats, and
non-negative: ``kind`` says whether an item is a debit (invoice, debit note, installment)
or a credit (credit note, payment on account).

Posting. ``post_payment`` must be idempotent on ``ErpPaymentPosting.idempotency_key``: the
connector stores the key in a reference field of the ERP document and looks it up before
posting, so a retry after a crash, a timeout or a restart answers ``duplicate`` with the
original document id instead of posting twice. When the outcome of a post is unknown (a
5xx or a timeout after the request was sent) it raises a retryable ``ProviderError``; the
retry's look-up settles it. Connectors that cannot write set ``writes_payments = False``
and answer ``rejected``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

import msgspec

from .context import ProviderContext
from .integration import ConnectionCheck, NoConfig, NoSecrets
from .money import Money

__all__ = [
    "CREDIT_KINDS",
    "BaseErpConnector",
    "ErpAllocation",
    "ErpConnector",
    "ErpDebtor",
    "ErpOpenItem",
    "ErpPayment",
    "ErpPaymentPosting",
    "ErpPostingResult",
    "ErpRowError",
    "ErpStream",
    "OpenItemKind",
    "OpenItemStatus",
    "Page",
]

T = TypeVar("T")
OpenItemKind = Literal["invoice", "credit_note", "debit_note", "installment", "payment_on_account"]
#: ``open``: still owed. ``cleared``: paid or otherwise settled in the ERP (the host closes
#: the obligation). ``cancelled``: reversed or cancelled in the ERP.
OpenItemStatus = Literal["open", "cleared", "cancelled"]
#: The streams a connector can pull; the host stores one cursor per integration and stream.
ErpStream = Literal["debtors", "open_items", "payments"]
#: Kinds whose amounts are credits in the debtor's favour.
CREDIT_KINDS: frozenset[str] = frozenset({"credit_note", "payment_on_account"})


class ErpRowError(msgspec.Struct, frozen=True, kw_only=True):
    """A row of a page that could not be mapped, reported instead of raised.

    ``row_key`` is the ERP's key of the row when it could be read (``None`` otherwise);
    ``code`` is stable and machine-readable (``malformed_row``, ``unknown_currency``,
    ``bad_amount``...); ``message`` is for people and never holds secrets.
    """

    row_key: str | None
    code: str
    message: str


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a pull.

    ``next_cursor`` is ``None`` on the last page of a run; that page carries
    ``delta_cursor``, where the next run starts. ``errors`` lists the rows of this page that
    could not be mapped (the page's other rows are in ``items``).
    """

    items: list[T]
    next_cursor: str | None = None
    delta_cursor: str | None = None
    errors: list[ErpRowError] = msgspec.field(default_factory=list)


class ErpDebtor(msgspec.Struct, frozen=True, kw_only=True):
    """A customer/business partner (SAP ``Customer``, B1 ``BusinessPartners``)."""

    external_id: str
    name: str
    country: str | None = None
    tax_id: str | None = None
    tax_id_type: str | None = None
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    credit_limit: Money | None = None
    updated_at: datetime | None = None
    attributes: dict[str, str] = msgspec.field(default_factory=dict)


class ErpOpenItem(msgspec.Struct, frozen=True, kw_only=True):
    """A receivable line. ``external_id`` is unique and stable (for SAP a composite
    of company code, fiscal year, document number and line item; for Business One the
    document type and entry, plus the installment when an invoice has several).

    Amounts are non-negative (``kind`` says debit or credit; the conformance suite checks
    it). A full pull returns the open items (plus, possibly, items that closed while it
    ran); delta pulls also return items that closed since the last run. A closed item has
    ``status`` ``cleared``/``cancelled`` and ``open_amount`` zero, and the host closes its
    obligation. ``attributes`` holds ERP extras as strings (dunning level, payment terms...).
    """

    external_id: str
    debtor_external_id: str
    document_number: str
    kind: OpenItemKind
    issue_date: date
    due_date: date
    original_amount: Money
    open_amount: Money
    reference: str | None = None
    updated_at: datetime | None = None
    status: OpenItemStatus = "open"
    attributes: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.original_amount.currency != self.open_amount.currency:
            raise ValueError("original_amount and open_amount must share a currency")


class ErpPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment or clearing the ERP recorded against one open item (``payments`` stream).

    It lets payments the creditor's own bank process posts reach Cartera. ``external_id`` is
    unique and stable per (clearing document, open item); ``document_id`` is the ERP's
    payment/clearing document, which the host matches against payments it posted itself
    (``ErpPostingResult.erp_document_id``) so a payment recorded in both is not doubled.
    ``amount`` is what cleared the item, in the item's currency.
    """

    external_id: str
    debtor_external_id: str
    open_item_external_id: str
    document_id: str
    amount: Money
    value_date: date
    reference: str | None = None
    updated_at: datetime | None = None


class ErpAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Part of a payment applied to one open item."""

    open_item_external_id: str
    amount: Money


class ErpPaymentPosting(msgspec.Struct, frozen=True, kw_only=True):
    """A payment to post (clear) in the ERP, with its allocations."""

    idempotency_key: str
    debtor_external_id: str
    amount: Money
    value_date: date
    reference: str
    allocations: list[ErpAllocation] = msgspec.field(default_factory=list)
    memo: str | None = None

    def __post_init__(self) -> None:
        total = sum((a.amount.amount for a in self.allocations), start=0)
        for allocation in self.allocations:
            if allocation.amount.currency != self.amount.currency:
                raise ValueError("allocations must be in the payment's currency")
        if total > self.amount.amount:
            raise ValueError("allocations exceed the payment amount")


class ErpPostingResult(msgspec.Struct, frozen=True, kw_only=True):
    """``posted`` (new document), ``duplicate`` (same idempotency key seen before; the
    original document id is returned) or ``rejected`` (the ERP refused it, or the connector
    cannot post; ``message`` says why and is shown to people: retrying will not help).
    An unknown outcome is not a result: ``post_payment`` raises a retryable
    ``ProviderError`` instead."""

    status: Literal["posted", "duplicate", "rejected"]
    erp_document_id: str | None = None
    message: str | None = None


@runtime_checkable
class ErpConnector(Protocol):
    """What ``register_erp_connectors`` registers. All I/O methods are ``async``.

    Optional members the host reads with defaults (``BaseErpConnector`` has them all):
    ``streams`` (default ``debtors`` and ``open_items``), ``writes_payments`` (default
    ``True``), ``pull_payments`` (when ``"payments"`` is in ``streams``) and ``close``.
    """

    @property
    def name(self) -> str: ...

    @property
    def Config(self) -> type[msgspec.Struct]: ...

    @property
    def Secrets(self) -> type[msgspec.Struct]: ...

    async def pull_debtors(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpDebtor]: ...

    async def pull_open_items(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpOpenItem]: ...

    async def post_payment(
        self, posting: ErpPaymentPosting, ctx: ProviderContext[Any, Any]
    ) -> ErpPostingResult: ...

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck: ...


class BaseErpConnector(ABC):
    """Convenience base with defaults for everything but the pulls and the posting.

    ``streams`` names the streams served (add ``"payments"`` and override
    ``pull_payments`` to read payments back); ``writes_payments`` is ``False`` for read-only
    connectors. ``close`` ends any ERP session the connector keeps for ``ctx``'s
    integration; the host calls it at the end of a sync run.
    """

    name: ClassVar[str]
    Config: ClassVar[type[msgspec.Struct]] = NoConfig
    Secrets: ClassVar[type[msgspec.Struct]] = NoSecrets
    streams: ClassVar[frozenset[ErpStream]] = frozenset({"debtors", "open_items"})
    writes_payments: ClassVar[bool] = True

    @abstractmethod
    async def pull_debtors(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpDebtor]: ...

    @abstractmethod
    async def pull_open_items(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpOpenItem]: ...

    @abstractmethod
    async def post_payment(
        self, posting: ErpPaymentPosting, ctx: ProviderContext[Any, Any]
    ) -> ErpPostingResult: ...

    async def pull_payments(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpPayment]:
        """Payments/clearings recorded in the ERP; the default serves none (one empty page)."""
        return Page(items=[])

    async def close(self, ctx: ProviderContext[Any, Any]) -> None:
        """End the ERP session kept for ``ctx``'s integration, if any (default: nothing)."""
        return None

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Default reports "not checked"."""
        return ConnectionCheck(ok=True, detail="no connection test implemented", code="unchecked")
