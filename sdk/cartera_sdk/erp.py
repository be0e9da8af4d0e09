"""ERP connector contract: page debtors and open items out of an ERP, post payments back.

Pulls are resumable: each :class:`Page` carries an opaque ``next_cursor`` (``None`` at the
end) that the host stores and passes back, so a crashed import resumes where it stopped
(SAP OData ``$skiptoken``/``__next``, Business One ``odata.nextLink``, or a delta token).
``post_payment`` must be idempotent on ``ErpPaymentPosting.idempotency_key``.
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
    "BaseErpConnector",
    "ErpAllocation",
    "ErpConnector",
    "ErpDebtor",
    "ErpOpenItem",
    "ErpPaymentPosting",
    "ErpPostingResult",
    "OpenItemKind",
    "Page",
]

T = TypeVar("T")
OpenItemKind = Literal["invoice", "credit_note", "debit_note", "installment", "payment_on_account"]


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a pull. ``next_cursor`` is ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None = None


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
    """An open receivable line. ``external_id`` is unique and stable (for SAP a composite
    of company code, fiscal year, document number and line item)."""

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

    def __post_init__(self) -> None:
        if self.original_amount.currency != self.open_amount.currency:
            raise ValueError("original_amount and open_amount must share a currency")


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
    original document id is returned) or ``rejected`` (with a message)."""

    status: Literal["posted", "duplicate", "rejected"]
    erp_document_id: str | None = None
    message: str | None = None


@runtime_checkable
class ErpConnector(Protocol):
    """What ``register_erp_connectors`` registers. All I/O methods are ``async``."""

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
    """Convenience base with a default ``test_connection``."""

    name: ClassVar[str]
    Config: ClassVar[type[msgspec.Struct]] = NoConfig
    Secrets: ClassVar[type[msgspec.Struct]] = NoSecrets

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

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Default reports "not checked"."""
        return ConnectionCheck(ok=True, detail="no connection test implemented", code="unchecked")
