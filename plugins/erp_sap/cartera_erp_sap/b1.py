"""SAP Business One Service Layer connector (read debtors and open items, post payments).

Protocol: ``POST Login`` opens a session (cookies ``B1SESSION`` and ``ROUTEID``, both sent on
every request); a 401 or the session's ``SessionTimeout`` (minutes, sliding) makes the
connector log in again and repeat the request once; ``close`` posts ``Logout``.

Streams (cursors are opaque to the host, see :mod:`cartera_sdk.erp`):

* ``debtors``: ``BusinessPartners`` with ``CardType eq 'cCustomer'``.
* ``open_items``: ``Invoices`` then ``CreditNotes``. A full pull reads the documents open
  when the run started (``DocumentStatus eq 'bost_Open'``) plus any document updated since
  then, so the set being paged can only grow and server-side paging never skips a row;
  an invoice with several installments becomes one item per installment.
* Deltas: each run first reads the newest ``UpdateDate``/``UpdateTime`` of each entity set;
  the next run asks for rows updated at or after it (inclusive: a repeat, never a gap) and
  reports documents that closed as ``cleared``/``cancelled``.

Paging follows ``odata.nextLink`` with ``Prefer: odata.maxpagesize=<limit>``. When a server
ignores the preference and sends more rows than asked, the page is cut at the limit and the
next request continues after the last key returned (``DocEntry``/``CardCode`` order), so a
page never exceeds the host's limit and nothing is skipped.

Posting: ``POST IncomingPayments`` with ``PaymentInvoices`` clears the invoices in one call.
The Service Layer has no idempotency key, so the connector writes ``cartera:<key>`` into a
configurable reference field (``Remarks`` by default, or a UDF defined on ORCT) and looks
for a non-cancelled payment carrying it before posting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
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
    ErpPaymentPosting,
    ErpPostingResult,
    Money,
    Page,
    ProviderContext,
)
from cartera_sdk.erp import OpenItemStatus
from cartera_sdk.errors import PermanentError, ProviderError, RetryableError

from ._wire import (
    CurrencyTable,
    RowProblem,
    exact_json,
    make_page,
    map_rows,
    odata_string,
    parse_day,
    provider_error,
    start_state,
    transport_error,
)

__all__ = ["B1Config", "B1Secrets", "BusinessOneConnector"]

_SESSION_MARGIN = timedelta(seconds=30)
_REFERENCE_PREFIX = "cartera:"
_BP_FIELDS = (
    "CardCode,CardName,CardType,Country,FederalTaxID,EmailAddress,Phone1,CreditLimit,"
    "UpdateDate,UpdateTime"
)
_DOC_FIELDS = (
    "DocEntry,DocNum,CardCode,DocDate,DocDueDate,DocTotal,DocTotalFc,PaidToDate,PaidToDateFC,"
    "DocCurrency,DocumentStatus,Cancelled,NumAtCard,UpdateDate,UpdateTime,DocumentInstallments"
)


class B1Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Business One settings.

    ``base_url`` is the Service Layer root including the version (``https://host:50000/b1s/v1``).
    ``local_currency`` is the company's local currency (ISO): documents in it carry
    ``DocTotal``/``PaidToDate``, others ``DocTotalFc``/``PaidToDateFC``.
    ``currency_aliases`` maps B1 currency codes that are not ISO to ISO (``{"$": "ARS"}``);
    ``accepted_currencies`` (when set) is the closed list of currencies rows may carry.
    ``transfer_account`` is the G/L account incoming transfers are booked to (needed to post);
    ``reference_field`` holds the idempotency reference on ``IncomingPayments``;
    ``erp_timezone`` is the IANA zone of the server's ``UpdateDate``/``UpdateTime`` clock.
    """

    base_url: str = "https://localhost:50000/b1s/v1"
    company_db: str = ""
    local_currency: str = "USD"
    currency_aliases: dict[str, str] = {}
    accepted_currencies: list[str] = []
    transfer_account: str = ""
    reference_field: str = "Remarks"
    erp_timezone: str = "UTC"
    timeout_seconds: float = 30.0


class B1Secrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Service Layer user credentials (write-only)."""

    username: str
    password: str


@dataclass
class _Session:
    cookie: str
    timeout: timedelta
    expires_at: datetime

    def touch(self, now: datetime) -> None:
        self.expires_at = now + self.timeout - _SESSION_MARGIN


@dataclass(frozen=True)
class _DocSet:
    entity: str
    tag: str
    kind: str
    invoice_type: str


_DOC_SETS = (
    _DocSet("Invoices", "INV", "invoice", "it_Invoice"),
    _DocSet("CreditNotes", "CRN", "credit_note", "it_CredItnote"),
)
_SESSION_KEY = tuple[str, str, str, str]


def _b1_error(response: httpx.Response) -> str:
    """The Service Layer's error text (``error.message.value``), or the HTTP reason."""
    try:
        error = json.loads(response.content)["error"]
        message = error["message"]
        return str(message["value"] if isinstance(message, dict) else message)
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _stamp(row: dict[str, Any]) -> list[str] | None:
    day, clock = row.get("UpdateDate"), row.get("UpdateTime")
    if not isinstance(day, str) or len(day) < 10:
        return None
    return [day[:10], clock if isinstance(clock, str) and clock else "00:00:00"]


def _since_filter(stamp: list[str]) -> str:
    day, clock = odata_string(stamp[0]), odata_string(stamp[1])
    return f"(UpdateDate gt {day} or (UpdateDate eq {day} and UpdateTime ge {clock}))"


class BusinessOneConnector(BaseErpConnector):
    """The ``sap_b1`` ERP connector (see the module docstring for the protocol)."""

    name: ClassVar[str] = "sap_b1"
    Config = B1Config
    Secrets = B1Secrets

    def __init__(self) -> None:
        self._sessions: dict[_SESSION_KEY, _Session] = {}

    # ------------------------------------------------------------------ session

    def _key(self, ctx: ProviderContext[Any, Any]) -> _SESSION_KEY:
        config: B1Config = ctx.config
        return (ctx.integration_id, config.base_url, config.company_db, ctx.secrets.username)

    def _client(self, ctx: ProviderContext[Any, Any]) -> httpx.AsyncClient:
        config: B1Config = ctx.config
        return ctx.http(config.base_url.rstrip("/") + "/", timeout=config.timeout_seconds)

    async def _login(self, ctx: ProviderContext[Any, Any], client: httpx.AsyncClient) -> _Session:
        config: B1Config = ctx.config
        payload = {
            "CompanyDB": config.company_db,
            "UserName": ctx.secrets.username,
            "Password": ctx.secrets.password,
        }
        try:
            response = await client.post("Login", json=payload)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        if response.status_code != 200:
            if response.status_code >= 500 or response.status_code == 429:
                raise provider_error(response, _b1_error(response))
            raise PermanentError("login_failed", _b1_error(response),
                                 status_code=response.status_code)
        body = exact_json(response)
        session_id = response.cookies.get("B1SESSION") or body.get("SessionId")
        if not session_id:
            raise RetryableError("bad_response", "Login returned no session")
        cookie = f"B1SESSION={session_id}"
        if route := response.cookies.get("ROUTEID"):
            cookie += f"; ROUTEID={route}"
        client.cookies.clear()  # the session travels in our own Cookie header only
        minutes = body.get("SessionTimeout")
        timeout = timedelta(minutes=int(minutes) if isinstance(minutes, int) else 30)
        session = _Session(cookie=cookie, timeout=timeout, expires_at=ctx.clock.now())
        session.touch(ctx.clock.now())
        self._sessions[self._key(ctx)] = session
        return session

    async def _session(
        self, ctx: ProviderContext[Any, Any], client: httpx.AsyncClient
    ) -> _Session:
        session = self._sessions.get(self._key(ctx))
        if session is None or session.expires_at <= ctx.clock.now():
            return await self._login(ctx, client)
        return session

    async def _request(
        self,
        ctx: ProviderContext[Any, Any],
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with the session cookies; on 401 log in again and send once more."""
        response: httpx.Response | None = None
        for _ in range(2):
            session = await self._session(ctx, client)
            all_headers = {**(headers or {}), "Cookie": session.cookie}
            if body is not None:
                all_headers["Content-Type"] = "application/json"
            try:
                response = await client.request(
                    method, url, params=params, content=body, headers=all_headers
                )
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc
            if response.status_code != 401:
                session.touch(ctx.clock.now())
                return response
            self._sessions.pop(self._key(ctx), None)
        assert response is not None
        return response

    async def _get_json(
        self,
        ctx: ProviderContext[Any, Any],
        client: httpx.AsyncClient,
        url: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = await self._request(ctx, client, "GET", url, params=params, headers=headers)
        if response.status_code != 200:
            raise provider_error(response, _b1_error(response))
        body = exact_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise RetryableError("bad_response", "the answer has no 'value' list")
        return body

    async def close(self, ctx: ProviderContext[Any, Any]) -> None:
        """``POST Logout`` for this integration's session, if one is open."""
        session = self._sessions.pop(self._key(ctx), None)
        if session is None:
            return
        async with self._client(ctx) as client:
            try:
                await client.post("Logout", headers={"Cookie": session.cookie})
            except httpx.TransportError:
                return  # the session times out on the server anyway

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Log in and out with the configured credentials."""
        try:
            async with self._client(ctx) as client:
                await self._login(ctx, client)
            await self.close(ctx)
        except ProviderError as exc:
            return ConnectionCheck(ok=False, detail=exc.reason or exc.code, code=exc.code)
        return ConnectionCheck(ok=True, detail=f"logged in to {ctx.config.company_db}")

    # ------------------------------------------------------------------ paging

    def _relative(self, ctx: ProviderContext[Any, Any], link: str) -> str:
        """``odata.nextLink`` as a URL relative to the service root (it may be absolute)."""
        root = urlsplit(ctx.config.base_url.rstrip("/") + "/")
        parts = urlsplit(link)
        if not parts.scheme and not link.startswith("/"):
            return link
        if (parts.scheme and parts.netloc != root.netloc) or not parts.path.startswith(root.path):
            raise PermanentError("bad_next_link", "odata.nextLink leaves the service root")
        rest = parts.path[len(root.path) :]
        return rest + (f"?{parts.query}" if parts.query else "")

    async def _watermark(
        self, ctx: ProviderContext[Any, Any], client: httpx.AsyncClient, entity: str, base: str
    ) -> list[str] | None:
        """The newest ``UpdateDate``/``UpdateTime`` in ``entity`` right now."""
        params = {
            "$select": "UpdateDate,UpdateTime",
            "$orderby": "UpdateDate desc,UpdateTime desc",
            "$top": "1",
        }
        if base:
            params["$filter"] = base
        rows = (await self._get_json(ctx, client, entity, params))["value"]
        return _stamp(rows[0]) if rows else None

    async def _fetch(
        self,
        ctx: ProviderContext[Any, Any],
        client: httpx.AsyncClient,
        state: dict[str, Any],
        entity: str,
        key_field: str,
        select: str,
        filters: list[str],
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of raw rows; updates ``state`` (``next``/``after``) and says if more follow."""
        headers = {"Prefer": f"odata.maxpagesize={limit}"}
        if state.get("next"):
            body = await self._get_json(ctx, client, state["next"], headers=headers)
        else:
            after = state.get("after")
            if after is not None:
                literal = odata_string(after) if isinstance(after, str) else str(after)
                filters = [*filters, f"{key_field} gt {literal}"]
            params = {"$select": select, "$orderby": f"{key_field} asc"}
            if filters:
                params["$filter"] = " and ".join(filters)
            body = await self._get_json(ctx, client, entity, params, headers)
        rows = [row for row in body["value"] if isinstance(row, dict)]
        link = body.get("odata.nextLink") or body.get("@odata.nextLink")
        if len(rows) > limit:
            rows, link = rows[:limit], None
            more = True
        else:
            more = bool(link)
        keys = [row[key_field] for row in rows if isinstance(row.get(key_field), int | str)]
        if more and not keys:
            raise RetryableError("bad_response", f"a page of {entity} without any {key_field}")
        following = self._relative(ctx, link) if link else None
        previous = state.get("after")
        if (following and following == state.get("next")) or (
            keys and previous is not None and type(keys[-1]) is type(previous)
            and keys[-1] <= previous
        ):
            raise RetryableError("repeated_page", f"{entity} sent the same page again")
        state["next"] = following
        state["after"] = keys[-1] if keys else state.get("after")
        return rows, more

    # ------------------------------------------------------------------ debtors

    async def pull_debtors(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpDebtor]:
        """Customers (``CardType eq 'cCustomer'``), ``CardCode`` order."""
        kind = "b1.debtors"
        base = "CardType eq 'cCustomer'"
        state = start_state(cursor, kind)
        async with self._client(ctx) as client:
            if state.pop("start", False):
                state["w"] = {"BusinessPartners": await self._watermark(
                    ctx, client, "BusinessPartners", base)}  # fmt: skip
            filters = [base]
            if since := state.get("since", {}).get("BusinessPartners"):
                filters.append(_since_filter(since))
            rows, more = await self._fetch(
                ctx, client, state, "BusinessPartners", "CardCode", _BP_FIELDS, filters, limit
            )
        debtors, errors = map_rows(rows, "CardCode", lambda row: [self._debtor(row, ctx)])
        return make_page(kind, state, debtors, errors, more)

    def _debtor(self, row: dict[str, Any], ctx: ProviderContext[Any, Any]) -> ErpDebtor:
        code, name = row.get("CardCode"), row.get("CardName")
        if not isinstance(code, str) or not code or not isinstance(name, str) or not name:
            raise RowProblem("malformed_row", "CardCode and CardName are required")
        if row.get("CardType") != "cCustomer":
            raise RowProblem("malformed_row", f"CardType {row.get('CardType')!r} is not a customer")
        limit = row.get("CreditLimit")
        currencies = self._currencies(ctx)
        credit = (
            currencies.money(limit, ctx.config.local_currency, "CreditLimit")
            if limit not in (None, 0)
            else None
        )
        return ErpDebtor(
            external_id=code,
            name=name,
            country=row.get("Country") or None,
            tax_id=row.get("FederalTaxID") or None,
            email=row.get("EmailAddress") or None,
            phone=row.get("Phone1") or None,
            credit_limit=credit,
            updated_at=_updated_at(row, ctx.config.erp_timezone),
        )

    # ------------------------------------------------------------------ open items

    async def pull_open_items(
        self, cursor: str | None, limit: int, ctx: ProviderContext[Any, Any]
    ) -> Page[ErpOpenItem]:
        """Open invoices then open credit notes (deltas: every updated document)."""
        kind = "b1.open_items"
        state = start_state(cursor, kind)
        async with self._client(ctx) as client:
            if state.pop("start", False):
                state["w"] = {d.entity: await self._watermark(ctx, client, d.entity, "")
                              for d in _DOC_SETS}  # fmt: skip
            doc_set = _DOC_SETS[state.get("p", 0)]
            since = state.get("since", {}).get(doc_set.entity)
            if state["m"] == "delta":
                filters = [_since_filter(since)] if since else []
            elif started := state.get("w", {}).get(doc_set.entity):
                filters = [f"(DocumentStatus eq 'bost_Open' or UpdateDate ge "
                           f"{odata_string(started[0])})"]  # fmt: skip
            else:
                filters = ["DocumentStatus eq 'bost_Open'"]
            rows, more = await self._fetch(
                ctx, client, state, doc_set.entity, "DocEntry", _DOC_FIELDS, filters, limit
            )
        items, errors = map_rows(rows, "DocEntry", lambda row: self._document(row, doc_set, ctx))
        if not more and state.get("p", 0) + 1 < len(_DOC_SETS):
            state.update(p=state.get("p", 0) + 1, next=None, after=None)
            more = True
        return make_page(kind, state, items, errors, more)

    def _currencies(self, ctx: ProviderContext[Any, Any]) -> CurrencyTable:
        config: B1Config = ctx.config
        return CurrencyTable(config.currency_aliases, config.accepted_currencies)

    def _document(
        self, row: dict[str, Any], doc_set: _DocSet, ctx: ProviderContext[Any, Any]
    ) -> list[ErpOpenItem]:
        entry, card = row.get("DocEntry"), row.get("CardCode")
        if not isinstance(entry, int) or not isinstance(card, str) or not card:
            raise RowProblem("malformed_row", "DocEntry and CardCode are required")
        currencies = self._currencies(ctx)
        currency = currencies.iso(row.get("DocCurrency"))
        local = currency == ctx.config.local_currency
        total = currencies.money(row.get("DocTotal" if local else "DocTotalFc"), currency,
                                 "DocTotal")  # fmt: skip
        paid = currencies.money(row.get("PaidToDate" if local else "PaidToDateFC") or 0,
                                currency, "PaidToDate")  # fmt: skip
        status = self._status(row)
        common: dict[str, Any] = {
            "debtor_external_id": card,
            "document_number": str(row.get("DocNum") or entry),
            "kind": doc_set.kind,
            "issue_date": parse_day(row.get("DocDate"), "DocDate"),
            "reference": row.get("NumAtCard") or None,
            "updated_at": _updated_at(row, ctx.config.erp_timezone),
            "status": status,
        }
        external_id = f"{doc_set.tag}-{entry}"
        installments = row.get("DocumentInstallments") or []
        if doc_set.kind != "invoice" or len(installments) <= 1:
            open_amount = total - paid if status == "open" else Money.of(0, currency)
            return [ErpOpenItem(
                external_id=external_id, due_date=parse_day(row.get("DocDueDate"), "DocDueDate"),
                original_amount=total, open_amount=_floor(open_amount), **common,
            )]  # fmt: skip
        return self._installments(external_id, installments, paid, local, status, common,
                                  currencies, currency)  # fmt: skip

    def _installments(
        self,
        external_id: str,
        installments: list[Any],
        paid: Money,
        local: bool,
        status: OpenItemStatus,
        common: dict[str, Any],
        currencies: CurrencyTable,
        currency: str,
    ) -> list[ErpOpenItem]:
        """One item per installment; ``PaidToDate`` settles the earliest due ones first."""
        parsed = []
        for inst in installments:
            if not isinstance(inst, dict) or not isinstance(inst.get("InstallmentId"), int):
                raise RowProblem("malformed_row", "an installment has no InstallmentId")
            amount = currencies.money(inst.get("Total" if local else "TotalFC"), currency,
                                      "DocumentInstallments.Total")  # fmt: skip
            parsed.append((parse_day(inst.get("DueDate"), "DueDate"), inst["InstallmentId"],
                           amount))  # fmt: skip
        remaining = paid
        items = []
        for due, number, amount in sorted(parsed, key=lambda p: (p[0], p[1])):
            applied = min(amount, remaining, key=lambda m: m.amount)
            remaining = remaining - applied
            open_amount = amount - applied if status == "open" else Money.of(0, currency)
            items.append(ErpOpenItem(
                external_id=f"{external_id}-{number}", due_date=due, original_amount=amount,
                open_amount=open_amount, **{**common, "kind": "installment"},
                attributes={"installment": str(number), "document": external_id},
            ))  # fmt: skip
        return items

    @staticmethod
    def _status(row: dict[str, Any]) -> OpenItemStatus:
        if row.get("Cancelled") == "tYES":
            return "cancelled"
        document_status = row.get("DocumentStatus")
        if document_status == "bost_Open":
            return "open"
        if document_status == "bost_Close":
            return "cleared"
        raise RowProblem("malformed_row", f"unknown DocumentStatus {document_status!r}")

    # ------------------------------------------------------------------ posting

    async def post_payment(
        self, posting: ErpPaymentPosting, ctx: ProviderContext[Any, Any]
    ) -> ErpPostingResult:
        """Post an incoming payment applied to the allocated invoices, at most once per key."""
        config: B1Config = ctx.config
        if not config.transfer_account:
            return ErpPostingResult(status="rejected", message="transfer_account is not set")
        try:
            lines = [self._payment_line(a.open_item_external_id, a.amount.amount,
                                        a.amount.currency == config.local_currency)
                     for a in posting.allocations]  # fmt: skip
        except RowProblem as problem:
            return ErpPostingResult(status="rejected", message=str(problem))
        reference = _REFERENCE_PREFIX + posting.idempotency_key
        async with self._client(ctx) as client:
            existing = await self._find_payment(ctx, client, reference)
            if existing is not None:
                return ErpPostingResult(status="duplicate", erp_document_id=existing)
            body = self._payment_body(posting, config, reference, lines)
            response = await self._request(ctx, client, "POST", "IncomingPayments", body=body)
        if response.status_code == 201:
            return ErpPostingResult(status="posted",
                                    erp_document_id=str(exact_json(response)["DocEntry"]))
        if response.status_code >= 500 or response.status_code == 429:
            raise provider_error(response, _b1_error(response))  # outcome unknown: retry checks
        return ErpPostingResult(status="rejected", message=_b1_error(response))

    async def _find_payment(
        self, ctx: ProviderContext[Any, Any], client: httpx.AsyncClient, reference: str
    ) -> str | None:
        field = ctx.config.reference_field
        params = {
            "$filter": f"{field} eq {odata_string(reference)} and Cancelled eq 'tNO'",
            "$select": "DocEntry",
        }
        rows = (await self._get_json(ctx, client, "IncomingPayments", params))["value"]
        return str(rows[0]["DocEntry"]) if rows else None

    @staticmethod
    def _payment_line(external_id: str, amount: Decimal, local: bool) -> dict[str, Any]:
        tag, _, rest = external_id.partition("-")
        entry, _, installment = rest.partition("-")
        if tag != "INV" or not entry.isdigit() or (installment and not installment.isdigit()):
            raise RowProblem("unknown_item", f"{external_id!r} is not a Business One invoice")
        line: dict[str, Any] = {"DocEntry": int(entry), "InvoiceType": "it_Invoice",
                                ("SumApplied" if local else "AppliedFC"): amount}  # fmt: skip
        if installment:
            line["InstallmentId"] = int(installment)
        return line

    def _payment_body(self, posting: ErpPaymentPosting, config: B1Config, reference: str,
                      lines: list[dict[str, Any]]) -> bytes:  # fmt: skip
        currencies = CurrencyTable(config.currency_aliases, config.accepted_currencies)
        payload: dict[str, Any] = {
            "CardCode": posting.debtor_external_id,
            "DocType": "rCustomer",
            "DocDate": posting.value_date.isoformat(),
            "DocCurrency": currencies.erp_code(posting.amount.currency),
            "TransferAccount": config.transfer_account,
            "TransferDate": posting.value_date.isoformat(),
            "TransferSum": posting.amount.amount,
            "TransferReference": posting.reference,
            config.reference_field: reference,
            "PaymentInvoices": lines,
        }
        if posting.memo:
            payload["JournalRemarks"] = posting.memo[:50]
        return msgspec.json.Encoder(decimal_format="number").encode(payload)


def _floor(money: Money) -> Money:
    """Overpaid documents are owed nothing, not a negative amount."""
    return money if money.amount >= 0 else Money.of(0, money.currency)


def _updated_at(row: dict[str, Any], zone: str) -> datetime | None:
    """``UpdateDate`` + ``UpdateTime`` (the B1 server's wall clock) as an aware instant."""
    stamp = _stamp(row)
    if stamp is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(stamp[0]), time.fromisoformat(stamp[1]),
                                tzinfo=ZoneInfo(zone))  # fmt: skip
    except ValueError:
        return None
