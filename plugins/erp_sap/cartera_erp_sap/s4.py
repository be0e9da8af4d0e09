"""SAP S/4HANA connector, read-only, over OData v2 (no CSRF needed: GET only).

* ``debtors``: ``API_BUSINESS_PARTNER`` ``A_BusinessPartner`` rows that are customers
  (``Customer ne ''``), with their addresses' country, e-mail and phone expanded. The
  debtor's ``external_id`` is the customer number, the key the AR cube uses.
* ``open_items``: ``API_OPLACCTGDOCITEMCUBE_SRV`` ``A_OperationalAcctgDocItemCube``
  customer line items (``FinancialAccountType eq 'D'``) in transaction currency. A full
  pull reads items open at the start of the run plus items cleared since, so the set being
  paged only grows; deltas read items created, changed or cleared on or after the day the
  previous run started (minus ``delta_overlap_days``, since SAP keeps dates, not instants).
* ``payments``: cleared debit items read back (``ClearingDate``,
  ``ClearingAccountingDocument``), so payments the creditor's own bank process posts reach
  Cartera.

OData v2 paging: ``$top``/``$skip`` windows with ``$inlinecount=allpages``; when the server
truncates a window it sends ``__next`` (``$skiptoken``), which the cursor follows verbatim.
Decimals arrive as strings and dates as ``/Date(<ms>)/``; both are decoded exactly.
``post_payment`` answers ``rejected``: posting and clearing on S/4HANA is an asynchronous
SOAP process this connector does not perform.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import msgspec
from cartera_sdk import (
    BaseErpConnector,
    ConnectionCheck,
    ErpDebtor,
    ErpOpenItem,
    ErpPayment,
    ErpPaymentPosting,
    ErpPostingResult,
    Money,
    Page,
    ProviderContext,
)
from cartera_sdk.erp import ErpStream, OpenItemKind, OpenItemStatus
from cartera_sdk.errors import PermanentError, ProviderError, RetryableError

from ._wire import (
    CurrencyTable,
    RowProblem,
    exact_json,
    make_page,
    map_rows,
    odata_date_literal,
    odata_string,
    parse_epoch_date,
    provider_error,
    start_state,
    transport_error,
)

__all__ = ["S4Config", "S4HanaConnector", "S4Secrets"]

_ITEM_KEYS = ("CompanyCode", "FiscalYear", "AccountingDocument", "AccountingDocumentItem")
_ITEM_FIELDS = ",".join((
    *_ITEM_KEYS, "FinancialAccountType", "Customer", "AccountingDocumentType",
    "DocumentReferenceID", "PostingDate", "DocumentDate", "NetDueDate", "DebitCreditCode",
    "AmountInTransactionCurrency", "TransactionCurrency", "IsCleared", "ClearingDate",
    "ClearingAccountingDocument", "ClearingDocFiscalYear", "IsReversed", "DunningLevel",
    "PaymentTerms",
))  # fmt: skip
_BP_FIELDS = "BusinessPartner,Customer,BusinessPartnerFullName,BusinessPartnerIsBlocked,to_BusinessPartnerAddress"  # noqa: E501
_BP_EXPAND = "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerAddress/to_PhoneNumber"
#: Customer-side document types that are credits but not payments (credit memos).
_CREDIT_MEMO_TYPES = frozenset({"DG"})


class S4Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """S/4HANA settings.

    ``base_url`` is the API host (``https://myNNNNNN-api.s4hana.cloud.sap``); the two
    service paths are configurable. ``company_codes`` limits items to those company codes
    (empty: all). ``sap_client`` is sent as ``sap-client`` on-premise. ``erp_timezone`` is
    the zone SAP's dates are in; ``payments_history_days`` is how far back the first
    ``payments`` pull reads clearings.
    """

    base_url: str = "https://localhost"
    business_partner_service: str = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
    open_items_service: str = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV"
    company_codes: list[str] = []
    sap_client: str = ""
    accepted_currencies: list[str] = []
    delta_overlap_days: int = 1
    payments_history_days: int = 30
    erp_timezone: str = "UTC"
    timeout_seconds: float = 60.0


class S4Secrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Communication user for HTTP Basic authentication (write-only)."""

    username: str
    password: str


def _s4_error(response: httpx.Response) -> str:
    """Gateway's ``error.message.value``, or the HTTP reason."""
    try:
        message = msgspec.json.decode(response.content)["error"]["message"]
        return str(message["value"] if isinstance(message, dict) else message)
    except (msgspec.DecodeError, KeyError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _text(row: dict[str, Any], field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value:
        raise RowProblem("malformed_row", f"{field} is required")
    return value


def _results(value: Any) -> list[dict[str, Any]]:
    """An expanded to-many navigation (``{"results": [...]}``) as a list of rows."""
    rows = value.get("results") if isinstance(value, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _default(rows: list[dict[str, Any]], flag: str, field: str) -> str | None:
    chosen = next((r for r in rows if r.get(flag)), rows[0] if rows else None)
    value = chosen.get(field) if chosen else None
    return value if isinstance(value, str) and value else None


class S4HanaConnector(BaseErpConnector):
    """The ``sap_s4hana`` ERP connector (see the module docstring for the protocol)."""

    name: ClassVar[str] = "sap_s4hana"
    Config = S4Config
    Secrets = S4Secrets
    streams: ClassVar[frozenset[ErpStream]] = frozenset({"debtors", "open_items", "payments"})
    writes_payments: ClassVar[bool] = False

    # ------------------------------------------------------------------ HTTP

    def _client(self, ctx: ProviderContext[Any, Any]) -> httpx.AsyncClient:
        config: S4Config = ctx.config
        return ctx.http(
            config.base_url.rstrip("/") + "/",
            headers={"Accept": "application/json"},
            auth=(ctx.secrets.username, ctx.secrets.password),
            timeout=config.timeout_seconds,
        )

    def _relative_next(self, ctx: ProviderContext[Any, Any], link: str, service: str) -> str:
        """``__next`` as a path under the host; it must stay inside ``service``."""
        root = urlsplit(ctx.config.base_url.rstrip("/") + "/")
        parts = urlsplit(link)
        if parts.scheme and parts.netloc != root.netloc:
            raise PermanentError("bad_next_link", "__next points at another host")
        path = parts.path if parts.path.startswith("/") else f"{service}/{parts.path}"
        if not path.startswith(service + "/"):
            raise PermanentError("bad_next_link", "__next leaves the service")
        return path.lstrip("/") + (f"?{parts.query}" if parts.query else "")

    async def _window(
        self,
        ctx: ProviderContext[Any, Any],
        state: dict[str, Any],
        service: str,
        entity: str,
        params: dict[str, str],
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of raw rows; advances ``state`` (``o`` offset, ``n`` ``__next``)."""
        config: S4Config = ctx.config
        service = "/" + service.strip("/")
        if state.get("n"):
            url, query = self._relative_next(ctx, state["n"], service), None
        else:
            url = f"{service.lstrip('/')}/{entity}"
            query = {**params, "$top": str(limit), "$skip": str(state.get("o", 0)),
                     "$inlinecount": "allpages", "$format": "json"}  # fmt: skip
            if config.sap_client:
                query["sap-client"] = config.sap_client
        async with self._client(ctx) as client:
            try:
                response = await client.get(url, params=query)
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc
        if response.status_code != 200:
            raise provider_error(response, _s4_error(response))
        body = exact_json(response)
        envelope = body.get("d") if isinstance(body, dict) else None
        rows = envelope.get("results") if isinstance(envelope, dict) else None
        if not isinstance(rows, list):
            raise RetryableError("bad_response", "the answer has no d.results list")
        assert isinstance(envelope, dict)
        next_link = envelope.get("__next")
        if len(rows) > limit:  # the server ignored $top: cut, and page on with $skip
            rows, next_link = rows[:limit], None
        followed = state.get("n")
        state["o"] = state.get("o", 0) + len(rows)
        state["n"] = next_link if isinstance(next_link, str) and next_link else None
        if followed and state["n"] == followed:
            raise RetryableError("repeated_page", f"{entity} sent the same page again")
        count = envelope.get("__count")
        total = int(count) if isinstance(count, str) and count.isdigit() else None
        more = bool(state["n"]) or (state["o"] < total if total is not None else len(rows) == limit)
        return [r for r in rows if isinstance(r, dict)], more and bool(rows)

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Read one business partner with the configured credentials."""
        try:
            await self._window(ctx, {}, ctx.config.business_partner_service,
                               "A_BusinessPartner", {"$select": "BusinessPartner"}, 1)  # fmt: skip
        except ProviderError as exc:
            return ConnectionCheck(ok=False, detail=exc.reason or exc.code, code=exc.code)
        return ConnectionCheck(ok=True, detail="API_BUSINESS_PARTNER answered")

    # ------------------------------------------------------------------ dates and filters

    def _today(self, ctx: ProviderContext[Any, Any]) -> date:
        return ctx.clock.now().astimezone(ZoneInfo(ctx.config.erp_timezone)).date()

    def _begin(self, ctx: ProviderContext[Any, Any], state: dict[str, Any]) -> None:
        """At a run's start, remember the day it began (minus the overlap) for the next run."""
        if state.pop("start", False):
            start = self._today(ctx) - timedelta(days=ctx.config.delta_overlap_days)
            state["w"] = {"day": start.isoformat()}

    def _since(self, state: dict[str, Any]) -> str | None:
        return state.get("since", {}).get("day") if state["m"] == "delta" else None

    def _item_scope(self, ctx: ProviderContext[Any, Any]) -> list[str]:
        scope = ["FinancialAccountType eq 'D'"]
        codes = ctx.config.company_codes
        if codes:
            either = " or ".join(f"CompanyCode eq {odata_string(c)}" for c in codes)
            scope.append(f"({either})")
        return scope

    # ------------------------------------------------------------------ debtors

    async def pull_debtors(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpDebtor]:
        """Business partners that are customers, ``BusinessPartner`` order."""
        kind = "s4.debtors"
        state = start_state(cursor, kind)
        self._begin(ctx, state)
        filters = ["Customer ne ''"]
        if since := self._since(state):
            day = odata_date_literal(_day(since))
            filters.append(f"(LastChangeDate ge {day} or CreationDate ge {day})")
        params = {"$filter": " and ".join(filters), "$select": _BP_FIELDS,
                  "$expand": _BP_EXPAND, "$orderby": "BusinessPartner asc"}  # fmt: skip
        rows, more = await self._window(ctx, state, ctx.config.business_partner_service,
                                        "A_BusinessPartner", params, limit)  # fmt: skip
        debtors, errors = map_rows(rows, "Customer", lambda row: [self._debtor(row)])
        return make_page(kind, state, debtors, errors, more)

    @staticmethod
    def _debtor(row: dict[str, Any]) -> ErpDebtor:
        customer = _text(row, "Customer")
        name = _text(row, "BusinessPartnerFullName")
        addresses = _results(row.get("to_BusinessPartnerAddress"))
        emails = [e for a in addresses for e in _results(a.get("to_EmailAddress"))]
        phones = [p for a in addresses for p in _results(a.get("to_PhoneNumber"))]
        return ErpDebtor(
            external_id=customer,
            name=name,
            country=_default(addresses, "", "Country"),
            email=_default(emails, "IsDefaultEmailAddress", "EmailAddress"),
            phone=_default(phones, "IsDefaultPhoneNumber", "InternationalPhoneNumber"),
            attributes={"business_partner": str(row.get("BusinessPartner") or ""),
                        "blocked": "true" if row.get("BusinessPartnerIsBlocked") else "false"},
        )  # fmt: skip

    # ------------------------------------------------------------------ open items

    async def pull_open_items(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpOpenItem]:
        """Customer line items: open ones (full), or created/changed/cleared ones (delta)."""
        kind = "s4.open_items"
        state = start_state(cursor, kind)
        self._begin(ctx, state)
        filters = self._item_scope(ctx)
        if since := self._since(state):
            day = odata_date_literal(_day(since))
            filters.append(f"(LastChangeDate ge {day} or AccountingDocumentCreationDate ge {day}"
                           f" or ClearingDate ge {day})")  # fmt: skip
        else:
            started = odata_date_literal(_day(state["w"]["day"]))
            filters.append(f"(IsCleared eq false or ClearingDate ge {started})")
        rows, more = await self._items(ctx, state, filters, limit)
        currencies = CurrencyTable({}, ctx.config.accepted_currencies)
        items, errors = map_rows(rows, "AccountingDocument",
                                 lambda row: [self._open_item(row, currencies)])  # fmt: skip
        return make_page(kind, state, items, errors, more)

    async def _items(
        self, ctx: ProviderContext[Any, Any], state: dict[str, Any], filters: list[str], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        params = {"$filter": " and ".join(filters), "$select": _ITEM_FIELDS,
                  "$orderby": ",".join(f"{k} asc" for k in _ITEM_KEYS)}  # fmt: skip
        return await self._window(ctx, state, ctx.config.open_items_service,
                                  "A_OperationalAcctgDocItemCube", params, limit)  # fmt: skip

    @staticmethod
    def _item_id(row: dict[str, Any]) -> str:
        return "/".join(_text(row, key) for key in _ITEM_KEYS)

    def _open_item(self, row: dict[str, Any], currencies: CurrencyTable) -> ErpOpenItem:
        if row.get("FinancialAccountType") != "D":
            raise RowProblem("malformed_row", "not a customer line item")
        currency = currencies.iso(row.get("TransactionCurrency"))
        signed = currencies.money(row.get("AmountInTransactionCurrency"), currency,
                                  "AmountInTransactionCurrency")  # fmt: skip
        amount = Money(abs(signed.amount), currency)
        credit = row.get("DebitCreditCode") == "H"
        if row.get("DebitCreditCode") not in ("S", "H"):
            raise RowProblem("malformed_row", "DebitCreditCode must be S or H")
        status: OpenItemStatus = ("cancelled" if row.get("IsReversed")
                  else "cleared" if row.get("IsCleared") else "open")  # fmt: skip
        due = parse_epoch_date(row.get("NetDueDate"), "NetDueDate")
        issued = parse_epoch_date(row.get("DocumentDate") or row.get("PostingDate"), "DocumentDate")
        if due is None or issued is None:
            raise RowProblem("malformed_row", "NetDueDate and DocumentDate are required")
        document_type = str(row.get("AccountingDocumentType") or "")
        kind: OpenItemKind = "invoice"
        if credit:
            kind = "credit_note" if document_type in _CREDIT_MEMO_TYPES else "payment_on_account"
        extras = {"company_code": _text(row, "CompanyCode"), "document_type": document_type,
                  "dunning_level": str(row.get("DunningLevel") or ""),
                  "payment_terms": str(row.get("PaymentTerms") or "")}  # fmt: skip
        return ErpOpenItem(
            external_id=self._item_id(row),
            debtor_external_id=_text(row, "Customer"),
            document_number=_text(row, "AccountingDocument"),
            kind=kind,
            issue_date=issued,
            due_date=due,
            original_amount=amount,
            open_amount=amount if status == "open" else Money.of(0, currency),
            reference=row.get("DocumentReferenceID") or None,
            status=status,
            attributes={k: v for k, v in extras.items() if v},
        )

    # ------------------------------------------------------------------ payments

    async def pull_payments(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpPayment]:
        """Cleared customer debit items, each read back as the payment that cleared it."""
        kind = "s4.payments"
        state = start_state(cursor, kind)
        self._begin(ctx, state)
        if "from" not in state:  # fixed for the whole run: the previous run's day, or history
            history = timedelta(days=ctx.config.payments_history_days)
            state["from"] = self._since(state) or (self._today(ctx) - history).isoformat()
        since = state["from"]
        filters = [*self._item_scope(ctx), "DebitCreditCode eq 'S'", "IsCleared eq true",
                   f"ClearingDate ge {odata_date_literal(_day(since))}"]  # fmt: skip
        rows, more = await self._items(ctx, state, filters, limit)
        currencies = CurrencyTable({}, ctx.config.accepted_currencies)
        payments, errors = map_rows(rows, "AccountingDocument",
                                    lambda row: self._payment(row, currencies))  # fmt: skip
        return make_page(kind, state, payments, errors, more)

    def _payment(self, row: dict[str, Any], currencies: CurrencyTable) -> Iterable[ErpPayment]:
        clearing = _text(row, "ClearingAccountingDocument")
        if clearing == row.get("AccountingDocument"):
            return []  # the payment's own line, cleared by itself
        cleared_on = parse_epoch_date(row.get("ClearingDate"), "ClearingDate")
        if cleared_on is None:
            raise RowProblem("malformed_row", "a cleared item without ClearingDate")
        currency = currencies.iso(row.get("TransactionCurrency"))
        signed = currencies.money(row.get("AmountInTransactionCurrency"), currency,
                                  "AmountInTransactionCurrency")  # fmt: skip
        year = str(row.get("ClearingDocFiscalYear") or row.get("FiscalYear") or "")
        document = f"{_text(row, 'CompanyCode')}/{year}/{clearing}"
        item = self._item_id(row)
        return [ErpPayment(
            external_id=f"{document}:{item}", debtor_external_id=_text(row, "Customer"),
            open_item_external_id=item, document_id=document,
            amount=Money(abs(signed.amount), currency), value_date=cleared_on,
            reference=row.get("DocumentReferenceID") or None,
        )]  # fmt: skip

    # ------------------------------------------------------------------ posting

    async def post_payment(
        self, posting: ErpPaymentPosting, ctx: ProviderContext[Any, Any]
    ) -> ErpPostingResult:
        """Read-only connector: every posting is rejected (nothing is sent)."""
        return ErpPostingResult(
            status="rejected",
            message="the S/4HANA connector is read-only; post payments through the bank process",
        )


def _day(value: str) -> date:
    return date.fromisoformat(value)
