"""A strict local fake of the SAP Business One Service Layer (``/b1s/v1``) on FakeHTTPServer.

Strict: ``Login`` needs exactly ``CompanyDB``/``UserName``/``Password``; every other
request needs both session cookies (``B1SESSION`` and ``ROUTEID``) of a live session, or
gets 401; collection reads need ``Prefer: odata.maxpagesize=N`` and only known query
options, properties, filters and orderings (see :mod:`sap_fake_odata`); an
``IncomingPayments`` post must name known fields with numbers as JSON numbers, apply no
more than the transfer and no more than each invoice's balance. Paging is server-driven:
``odata.nextLink`` carries ``$skip`` like the real service.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest, json_response
from sap_fake_odata import BadQuery, non_negative, parse_list, select_rows, single_query

ROOT = "/b1s/v1"
COMPANY_DB = "SBODEMOAR"
USERNAME = "manager"
PASSWORD = "b1-secret-Pa55"
TRANSFER_ACCOUNT = "_SYS00000000012"
ROUTE_ID = ".node0"

BP_FIELDS = frozenset({"CardCode", "CardName", "CardType", "Country", "FederalTaxID",
                       "EmailAddress", "Phone1", "CreditLimit", "UpdateDate", "UpdateTime"})
DOC_FIELDS = frozenset({
    "DocEntry", "DocNum", "CardCode", "DocDate", "DocDueDate", "DocTotal", "DocTotalFc",
    "PaidToDate", "PaidToDateFC", "DocCurrency", "DocumentStatus", "Cancelled", "NumAtCard",
    "UpdateDate", "UpdateTime", "DocumentInstallments",
})  # fmt: skip
PAYMENT_FIELDS = frozenset({"DocEntry", "DocNum", "CardCode", "Remarks", "Cancelled",
                            "DocDate", "TransferSum", "U_CarteraRef"})  # fmt: skip
PAYMENT_BODY = frozenset({
    "CardCode", "DocType", "DocDate", "DocCurrency", "TransferAccount", "TransferDate",
    "TransferSum", "TransferReference", "Remarks", "JournalRemarks", "U_CarteraRef",
    "PaymentInvoices",
})  # fmt: skip
LINE_FIELDS = frozenset({"DocEntry", "InvoiceType", "SumApplied", "AppliedFC", "InstallmentId"})
_OPTIONS = frozenset({"$filter", "$select", "$orderby", "$top", "$skip"})
_PREFER = re.compile(r"^odata\.maxpagesize=(\d+)$")


def b1_error(status: int, code: int, message: str) -> FakeResponse:
    return json_response({"error": {"code": code, "message": {"lang": "en-us",
                                                                "value": message}}}, status)


class FakeServiceLayer:
    """Business One data plus the routes. Mutate the lists to shape scenarios."""

    def __init__(self, server: FakeHTTPServer, *, customers: int = 5, invoices: int = 5,
                 credit_notes: int = 2, reference_field: str = "Remarks",
                 server_page_size: int = 20, honour_prefer: bool = True) -> None:  # fmt: skip
        self.server = server
        self.reference_field = reference_field
        self.server_page_size = server_page_size
        self.honour_prefer = honour_prefer
        self.lock = threading.Lock()
        self.sessions: set[str] = set()
        self.logins = 0
        self.logouts = 0
        self.outage: int | None = None
        self.answer_after_post: int | None = None  # post, then answer this status (a lost reply)
        self.stamp = datetime(2026, 3, 2, 16, 0, 0)
        self.business_partners = [self._bp(i) for i in range(1, customers + 1)]
        self.business_partners.append({**self._bp(99), "CardCode": "V99", "CardType": "cSupplier"})
        self.invoices = [self._invoice(i) for i in range(1, invoices + 1)]
        self.invoices.append({**self._invoice(50), "DocumentStatus": "bost_Close",
                              "PaidToDate": Decimal("1210.00")})  # fmt: skip
        self.credit_notes = [self._credit_note(i) for i in range(1, credit_notes + 1)]
        self.payments: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ data

    @staticmethod
    def _bp(i: int) -> dict[str, Any]:
        return {"CardCode": f"C{i:05d}", "CardName": f"Cliente {i} SRL", "CardType": "cCustomer",
                "Country": "AR", "FederalTaxID": f"30-7000000{i}-1",
                "EmailAddress": f"pagos{i}@cliente.example", "Phone1": f"+54 11 5555 000{i}",
                "CreditLimit": Decimal("500000.00"), "UpdateDate": f"2026-01-{10 + i:02d}",
                "UpdateTime": "09:30:00"}  # fmt: skip

    @staticmethod
    def _invoice(i: int) -> dict[str, Any]:
        return {"DocEntry": 45000 + i, "DocNum": 1200 + i, "CardCode": f"C{(i % 3) + 1:05d}",
                "DocDate": "2026-01-05", "DocDueDate": f"2026-02-{i % 27 + 1:02d}",
                "DocTotal": Decimal("1210.00"), "DocTotalFc": Decimal("0.0"),
                "PaidToDate": Decimal("200.00") if i == 2 else Decimal("0.0"),
                "PaidToDateFC": Decimal("0.0"), "DocCurrency": "$",
                "DocumentStatus": "bost_Open", "Cancelled": "tNO", "NumAtCard": f"A-0001-{i:08d}",
                "UpdateDate": f"2026-01-{10 + i % 15:02d}", "UpdateTime": "10:00:00",
                "DocumentInstallments": []}  # fmt: skip

    @staticmethod
    def _credit_note(i: int) -> dict[str, Any]:
        return {**FakeServiceLayer._invoice(i), "DocEntry": 7000 + i, "DocNum": 300 + i,
                "DocTotal": Decimal("121.00"), "NumAtCard": f"NC-{i}"}  # fmt: skip

    def tick(self) -> tuple[str, str]:
        """Advance the ERP's clock one minute; the new UpdateDate/UpdateTime."""
        self.stamp += timedelta(minutes=1)
        return self.stamp.date().isoformat(), self.stamp.time().isoformat()

    def touch(self, row: dict[str, Any], **changes: Any) -> None:
        day, clock = self.tick()
        row.update(changes, UpdateDate=day, UpdateTime=clock)

    # ErpFake controls (cartera_sdk.testkit.erp_conformance)

    def touch_debtor(self) -> str:
        bp = self.business_partners[2]
        self.touch(bp, CardName=bp["CardName"] + " (renamed)")
        return str(bp["CardCode"])

    def touch_open_item(self) -> str:
        invoice = self.invoices[3]
        self.touch(invoice, DocDueDate="2026-04-30")
        return f"INV-{invoice['DocEntry']}"

    def corrupt_open_item(self) -> str:
        invoice = self.invoices[1]
        invoice["DocTotal"] = "1.210,00"
        return f"INV-{invoice['DocEntry']}"

    def set_outage(self, status: int | None) -> None:
        self.outage = status

    def posted_count(self) -> int:
        return len(self.payments)

    def expire_sessions(self) -> None:
        """The server forgets every session (as after ``SessionTimeout`` idle minutes)."""
        self.sessions.clear()

    # ------------------------------------------------------------------ routes

    def install(self) -> FakeServiceLayer:
        s = self.server
        s.route("POST", f"{ROOT}/Login", self.login)
        s.route("POST", f"{ROOT}/Logout", self.guard(self.logout))
        s.route("GET", f"{ROOT}/BusinessPartners",
                self.guard(lambda r: self.collection(r, "BusinessPartners",
                                                     self.business_partners, BP_FIELDS)))
        s.route("GET", f"{ROOT}/Invoices",
                self.guard(lambda r: self.collection(r, "Invoices", self.invoices, DOC_FIELDS)))
        s.route("GET", f"{ROOT}/CreditNotes",
                self.guard(lambda r: self.collection(r, "CreditNotes", self.credit_notes,
                                                     DOC_FIELDS)))
        s.route("GET", f"{ROOT}/IncomingPayments",
                self.guard(lambda r: self.collection(r, "IncomingPayments", self.payments,
                                                     PAYMENT_FIELDS | {self.reference_field},
                                                     paged=False)))
        s.route("POST", f"{ROOT}/IncomingPayments", self.guard(self.post_payment))
        return self

    def login(self, request: RecordedRequest) -> FakeResponse:
        if self.outage:
            return b1_error(self.outage, -1, "Service Unavailable")
        try:
            body = request.json()
        except ValueError:
            return b1_error(400, -1, "malformed JSON")
        if set(body) != {"CompanyDB", "UserName", "Password"}:
            return b1_error(400, -1, f"unexpected Login fields {sorted(body)}")
        if (body["CompanyDB"], body["UserName"], body["Password"]) != (COMPANY_DB, USERNAME,
                                                                         PASSWORD):
            return b1_error(401, 100000027, "Login failed")
        with self.lock:
            self.logins += 1
            session = f"sess-{self.logins:04d}-{id(self):x}"
            self.sessions.add(session)
        # Two Set-Cookie headers: the names differ only in case so the header dict keeps both.
        headers = {"Set-Cookie": f"B1SESSION={session}; path=/b1s/v1; HttpOnly",
                   "set-cookie": f"ROUTEID={ROUTE_ID}; path=/b1s"}  # fmt: skip
        return json_response({"odata.metadata": f"{ROOT}/$metadata#B1Sessions/@Element",
                              "SessionId": session, "Version": "1000190",
                              "SessionTimeout": 30}, 200, headers)  # fmt: skip

    def guard(self, handler: Any) -> Any:
        """Session cookies first, then the outage switch, then the handler (400 on BadQuery)."""
        def guarded(request: RecordedRequest) -> FakeResponse:
            cookies = dict(part.strip().split("=", 1)
                           for part in request.headers.get("cookie", "").split(";")
                           if "=" in part)  # fmt: skip
            if cookies.get("B1SESSION") not in self.sessions or cookies.get("ROUTEID") != ROUTE_ID:
                return b1_error(401, 301, "Invalid session or session already timeout.")
            if self.outage:
                return b1_error(self.outage, -1, "Service Unavailable")
            try:
                with self.lock:
                    return handler(request)  # type: ignore[no-any-return]
            except BadQuery as exc:
                return b1_error(400, -1, str(exc))
        return guarded

    def logout(self, request: RecordedRequest) -> FakeResponse:
        cookie = request.headers.get("cookie", "")
        self.sessions = {s for s in self.sessions if f"B1SESSION={s}" not in cookie}
        self.logouts += 1
        return FakeResponse(204)

    def collection(self, request: RecordedRequest, entity: str, rows: list[dict[str, Any]],
                   fields: frozenset[str], paged: bool = True) -> FakeResponse:  # fmt: skip
        query = single_query(request.query, _OPTIONS)
        selected = parse_list(query["$select"], fields, "$select") if "$select" in query else None
        matched = select_rows(rows, query, fields)
        skip = non_negative(query, "$skip", 0)
        top = non_negative(query, "$top", len(matched))
        page_size = self.server_page_size
        prefer = request.headers.get("prefer")
        if paged and "$top" not in query:
            match = _PREFER.match(prefer or "")
            if match is None:
                raise BadQuery("collection reads need 'Prefer: odata.maxpagesize=N'")
            if self.honour_prefer:
                page_size = min(page_size, int(match.group(1)))
        window = matched[skip:skip + min(top, page_size)]
        body: dict[str, Any] = {"odata.metadata": f"{ROOT}/$metadata#{entity}",
                                "value": [self._project(r, selected) for r in window]}
        if skip + len(window) < min(len(matched), skip + top) and "$top" not in query:
            body["odata.nextLink"] = f"{entity}?" + urlencode({**query,
                                                               "$skip": skip + len(window)})
        return FakeResponse(200, json.dumps(body, default=_number).encode(),
                            {"Content-Type": "application/json;odata=minimalmetadata"})

    @staticmethod
    def _project(row: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
        return dict(row) if selected is None else {name: row.get(name) for name in selected}

    # ------------------------------------------------------------------ payments

    def post_payment(self, request: RecordedRequest) -> FakeResponse:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return b1_error(400, -1, "Content-Type must be application/json")
        body = json.loads(request.body, parse_float=Decimal)
        unknown = set(body) - (PAYMENT_BODY - {"Remarks", "U_CarteraRef"}) - {self.reference_field}
        if unknown:
            return b1_error(400, -1000, f"Property '{sorted(unknown)[0]}' is invalid")
        missing = {"CardCode", "DocDate", "TransferAccount", "TransferSum",
                   "PaymentInvoices"} - set(body)  # fmt: skip
        if missing:
            return b1_error(400, -5002, f"missing {sorted(missing)}")
        if body["TransferAccount"] != TRANSFER_ACCOUNT:
            return b1_error(400, -10, "Invalid G/L account")
        transfer = body["TransferSum"]
        if not isinstance(transfer, Decimal | int) or isinstance(transfer, bool):
            return b1_error(400, -1, "TransferSum must be a number")
        applied = Decimal(0)
        for line in body["PaymentInvoices"]:
            error = self._apply_check(line, body["CardCode"])
            if error:
                return b1_error(400, -5002, error)
            applied += line["SumApplied"]
        if applied > transfer:
            return b1_error(400, -5002, "Applied sum exceeds the payment total")
        for line in body["PaymentInvoices"]:
            invoice = self._invoice_by_entry(line["DocEntry"])
            assert invoice is not None
            paid = invoice["PaidToDate"] + line["SumApplied"]
            status = "bost_Close" if paid >= invoice["DocTotal"] else "bost_Open"
            self.touch(invoice, PaidToDate=paid, DocumentStatus=status)
        entry = 90000 + len(self.payments) + 1
        self.payments.append({"DocEntry": entry, "DocNum": entry - 89000,
                              "CardCode": body["CardCode"], "DocDate": body["DocDate"],
                              "TransferSum": transfer, "Cancelled": "tNO", "Remarks": None,
                              "U_CarteraRef": None,
                              self.reference_field: body.get(self.reference_field)})  # fmt: skip
        if self.answer_after_post:
            return b1_error(self.answer_after_post, -1, "Gateway Timeout")
        return FakeResponse(201, json.dumps({"DocEntry": entry, "DocNum": entry - 89000},
                                            default=_number).encode(),
                            {"Content-Type": "application/json"})  # fmt: skip

    def _invoice_by_entry(self, entry: Any) -> dict[str, Any] | None:
        return next((i for i in self.invoices if i["DocEntry"] == entry), None)

    def _apply_check(self, line: Any, card: str) -> str | None:
        if not isinstance(line, dict) or set(line) - LINE_FIELDS or "DocEntry" not in line:
            return f"bad PaymentInvoices line {line!r}"
        if line.get("InvoiceType", "it_Invoice") != "it_Invoice" or "SumApplied" not in line:
            return "only it_Invoice lines with SumApplied are supported by this fake"
        invoice = self._invoice_by_entry(line["DocEntry"])
        if invoice is None or invoice["CardCode"] != card:
            return f"Invoice {line['DocEntry']} not found for {card}"
        if invoice["DocumentStatus"] != "bost_Open":
            return f"Invoice {line['DocEntry']} is closed"
        amount = line["SumApplied"]
        if not isinstance(amount, Decimal | int) or amount > invoice["DocTotal"] - invoice[
                "PaidToDate"]:  # fmt: skip
            return "SumApplied exceeds the invoice balance"
        return None


def _number(value: Any) -> Any:
    """Decimals go out as JSON numbers, as the Service Layer sends Edm.Double."""
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral() else int(value)
    raise TypeError(type(value).__name__)
