"""A strict local fake of the S/4HANA OData v2 read APIs on FakeHTTPServer.

``API_BUSINESS_PARTNER/A_BusinessPartner`` and
``API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube``, verbose JSON (``d.results``,
``__count`` as a string with ``$inlinecount=allpages``, ``__next`` with a ``$skiptoken`` when
a window exceeds the server's page size), ``Edm.Decimal`` as strings, ``Edm.DateTime`` as
``/Date(<ms>)/``, empty strings for unset CHAR fields. Strict: Basic credentials and
``Accept: application/json`` on every request; unknown query options, properties, filters
(including type mismatches such as ``IsCleared eq 'false'``), orderings or expansions
answer 400 with the Gateway error shape.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest, json_response
from sap_fake_odata import BadQuery, non_negative, parse_list, select_rows, single_query

BP_PATH = "/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner"
ITEMS_PATH = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"
USERNAME = "CARTERA_COMM"
PASSWORD = "s4-Comm-Secret-9"
TODAY = date(2026, 3, 2)
BP_EXPAND = "to_BusinessPartnerAddress/to_EmailAddress,to_BusinessPartnerAddress/to_PhoneNumber"

BP_FIELDS = frozenset({"BusinessPartner", "Customer", "BusinessPartnerFullName",
                       "BusinessPartnerCategory", "BusinessPartnerIsBlocked", "CreationDate",
                       "LastChangeDate"})  # fmt: skip
BP_NAVIGATION = frozenset({"to_BusinessPartnerAddress"})
ITEM_FIELDS = frozenset({
    "CompanyCode", "FiscalYear", "AccountingDocument", "AccountingDocumentItem",
    "FinancialAccountType", "Customer", "CustomerName", "AccountingDocumentType",
    "DocumentReferenceID", "PostingDate", "DocumentDate", "NetDueDate", "DebitCreditCode",
    "AmountInTransactionCurrency", "TransactionCurrency", "AmountInCompanyCodeCurrency",
    "CompanyCodeCurrency", "IsCleared", "ClearingDate", "ClearingAccountingDocument",
    "ClearingDocFiscalYear", "IsReversed", "DunningLevel", "PaymentTerms", "LastChangeDate",
    "AccountingDocumentCreationDate", "AssignmentReference",
})  # fmt: skip
_OPTIONS = frozenset({"$filter", "$select", "$orderby", "$top", "$skip", "$inlinecount",
                      "$format", "$expand", "$skiptoken", "sap-client"})  # fmt: skip


def gateway_error(status: int, code: str, message: str) -> FakeResponse:
    return json_response({"error": {"code": code, "message": {"lang": "en", "value": message},
                                    "innererror": {"transactionid": "4FDF3748112322F4E1000000",
                                                   "errordetails": []}}}, status)  # fmt: skip


def _ms(day: date) -> str:
    return f"/Date({int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)})/"


def _render(value: Any) -> Any:
    if isinstance(value, date):
        return _ms(value)
    if isinstance(value, Decimal):
        return f"{value:.3f}"
    return value


class FakeS4:
    """S/4HANA data plus the routes. Mutate ``business_partners``/``items`` for scenarios."""

    def __init__(self, server: FakeHTTPServer, *, server_page_size: int = 50,
                 sap_client: str = "") -> None:  # fmt: skip
        self.server = server
        self.server_page_size = server_page_size
        self.sap_client = sap_client
        self.outage: int | None = None
        self.business_partners = [self._bp(i) for i in range(1, 6)]
        self.business_partners.insert(2, {**self._bp(9), "Customer": ""})  # a supplier-only BP
        self.items = [self._item(i) for i in range(1, 7)]
        self.items += [
            self._item(7, DebitCreditCode="H", AccountingDocumentType="DZ",
                       AmountInTransactionCurrency=Decimal("-300.000")),
            self._item(8, DebitCreditCode="H", AccountingDocumentType="DG",
                       AmountInTransactionCurrency=Decimal("-119.000")),
            self._item(9, IsCleared=True, ClearingDate=date(2026, 2, 20),
                       ClearingAccountingDocument="1400000001", ClearingDocFiscalYear="2026"),
            self._item(10, DebitCreditCode="H", AccountingDocumentType="DZ",
                       AccountingDocument="1400000001", IsCleared=True,
                       ClearingDate=date(2026, 2, 20), ClearingAccountingDocument="1400000001",
                       ClearingDocFiscalYear="2026",
                       AmountInTransactionCurrency=Decimal("-1190.000")),
            self._item(11, FinancialAccountType="K", Customer="", AccountingDocumentType="KR"),
            self._item(12, CompanyCode="1710", TransactionCurrency="USD"),
        ]  # fmt: skip

    @staticmethod
    def _bp(i: int) -> dict[str, Any]:
        return {"BusinessPartner": f"{1000000 + i}", "Customer": f"{10100000 + i}",
                "BusinessPartnerFullName": f"Inlandskunde DE {i}",
                "BusinessPartnerCategory": "2", "BusinessPartnerIsBlocked": False,
                "CreationDate": date(2025, 6, i), "LastChangeDate": date(2026, 1, 10 + i),
                "to_BusinessPartnerAddress": {"results": [{
                    "BusinessPartner": f"{1000000 + i}", "AddressID": f"{20000 + i}",
                    "Country": "DE",
                    "to_EmailAddress": {"results": [{"EmailAddress": f"ap{i}@kunde.example",
                                                     "IsDefaultEmailAddress": True}]},
                    "to_PhoneNumber": {"results": [{"InternationalPhoneNumber": f"+49301234{i}",
                                                    "IsDefaultPhoneNumber": True}]},
                }]}}  # fmt: skip

    @staticmethod
    def _item(i: int, **changes: Any) -> dict[str, Any]:
        row = {
            "CompanyCode": "1010", "FiscalYear": "2026", "AccountingDocument": f"{1800000000 + i}",
            "AccountingDocumentItem": "1", "FinancialAccountType": "D",
            "Customer": f"{10100000 + (i % 3) + 1}", "CustomerName": "Inlandskunde DE",
            "AccountingDocumentType": "DR", "DocumentReferenceID": f"9000{i:04d}",
            "PostingDate": date(2026, 1, i), "DocumentDate": date(2026, 1, i),
            "NetDueDate": date(2026, 2, i), "DebitCreditCode": "S",
            "AmountInTransactionCurrency": Decimal("1190.000"), "TransactionCurrency": "EUR",
            "AmountInCompanyCodeCurrency": Decimal("1190.000"), "CompanyCodeCurrency": "EUR",
            "IsCleared": False, "ClearingDate": None, "ClearingAccountingDocument": "",
            "ClearingDocFiscalYear": "", "IsReversed": False, "DunningLevel": "0",
            "PaymentTerms": "0001", "LastChangeDate": None,
            "AccountingDocumentCreationDate": date(2026, 1, i), "AssignmentReference": "",
        }  # fmt: skip
        row.update(changes)
        return row

    def item_id(self, row: dict[str, Any]) -> str:
        return "/".join(row[k] for k in ("CompanyCode", "FiscalYear", "AccountingDocument",
                                         "AccountingDocumentItem"))  # fmt: skip

    # ErpFake controls (cartera_sdk.testkit.erp_conformance)

    def touch_debtor(self) -> str:
        bp = self.business_partners[0]
        bp.update(BusinessPartnerFullName="Inlandskunde DE 1 GmbH", LastChangeDate=TODAY)
        return str(bp["Customer"])

    def touch_open_item(self) -> str:
        row = self.items[2]
        row.update(NetDueDate=date(2026, 4, 30), LastChangeDate=TODAY)
        return self.item_id(row)

    def corrupt_open_item(self) -> str:
        row = self.items[1]
        row["AmountInTransactionCurrency"] = "1.190,000"
        return self.item_id(row)

    def set_outage(self, status: int | None) -> None:
        self.outage = status

    def posted_count(self) -> int:
        return 0

    def clear(self, row: dict[str, Any], document: str, day: date = TODAY) -> None:
        """The creditor's bank process clears ``row`` with clearing ``document``."""
        row.update(IsCleared=True, ClearingDate=day, ClearingAccountingDocument=document,
                   ClearingDocFiscalYear=str(day.year))  # fmt: skip

    # ------------------------------------------------------------------ routes

    def install(self) -> FakeS4:
        self.server.route("GET", BP_PATH, self.guard(self.business_partner_set))
        self.server.route("GET", ITEMS_PATH, self.guard(self.item_set))
        return self

    def guard(self, handler: Any) -> Any:
        expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()

        def guarded(request: RecordedRequest) -> FakeResponse:
            if request.headers.get("authorization") != expected:
                return gateway_error(401, "/IWFND/CM_AUTH/001", "Unauthorized")
            if "application/json" not in request.headers.get("accept", ""):
                return gateway_error(406, "/IWFND/CM_MGW/004", "Accept application/json")
            if self.outage:
                return gateway_error(self.outage, "/IWFND/CM_BEC/026", "Backend unavailable")
            try:
                return handler(request)  # type: ignore[no-any-return]
            except BadQuery as exc:
                return gateway_error(400, "/IWBEP/CM_MGW_RT/022", str(exc))
        return guarded

    def business_partner_set(self, request: RecordedRequest) -> FakeResponse:
        query = self._query(request)
        if "$expand" in query and query["$expand"] != BP_EXPAND:
            raise BadQuery(f"unsupported $expand {query['$expand']!r}")
        return self._collection(request, query, BP_PATH, self.business_partners, BP_FIELDS,
                                BP_NAVIGATION)  # fmt: skip

    def item_set(self, request: RecordedRequest) -> FakeResponse:
        query = self._query(request)
        if "$expand" in query:
            raise BadQuery("A_OperationalAcctgDocItemCube has no navigation properties")
        return self._collection(request, query, ITEMS_PATH, self.items, ITEM_FIELDS,
                                frozenset())  # fmt: skip

    def _query(self, request: RecordedRequest) -> dict[str, str]:
        query = single_query(request.query, _OPTIONS)
        if query.get("$format", "json") != "json":
            raise BadQuery("only $format=json is served by this fake")
        if query.get("$inlinecount", "allpages") != "allpages":
            raise BadQuery("$inlinecount must be allpages or none")
        if query.get("sap-client", "") != self.sap_client:
            raise BadQuery(f"wrong sap-client {query.get('sap-client')!r}")
        if "$skiptoken" in query and "$skip" in query:
            raise BadQuery("$skiptoken and $skip together")
        return query

    def _collection(self, request: RecordedRequest, query: dict[str, str], path: str,
                    rows: list[dict[str, Any]], fields: frozenset[str],
                    navigation: frozenset[str]) -> FakeResponse:  # fmt: skip
        selected = (parse_list(query["$select"], fields | navigation, "$select")
                    if "$select" in query else None)  # fmt: skip
        matched = select_rows(rows, query, fields)
        start = int(query["$skiptoken"]) if "$skiptoken" in query else non_negative(
            query, "$skip", 0)  # fmt: skip
        top = non_negative(query, "$top", len(matched))
        window = matched[start:start + min(top, self.server_page_size)]
        expand = "$expand" in query
        results = [self._row(r, path, selected, navigation, expand) for r in window]
        envelope: dict[str, Any] = {"results": results}
        if "$inlinecount" in query:
            envelope["__count"] = str(len(matched))
        remaining = min(top, len(matched) - start) - len(window)
        if remaining > 0:
            following = {k: v for k, v in query.items() if k not in ("$skip", "$skiptoken")}
            following.update({"$skiptoken": str(start + len(window)), "$top": str(remaining)})
            envelope["__next"] = f"{self.server.base_url}{path}?{urlencode(following)}"
        return FakeResponse(200, json.dumps({"d": envelope}).encode(),
                            {"Content-Type": "application/json"})

    def _row(self, row: dict[str, Any], path: str, selected: list[str] | None,
             navigation: frozenset[str], expand: bool) -> dict[str, Any]:  # fmt: skip
        names = selected if selected is not None else [k for k in row if k not in navigation]
        out: dict[str, Any] = {"__metadata": {"uri": f"{self.server.base_url}{path}(...)",
                                              "type": path.rsplit("/", 1)[-1] + "Type"}}
        for name in names:
            if name in navigation:
                out[name] = row[name] if expand else {"__deferred": {"uri": name}}
            else:
                out[name] = _render(row.get(name))
        return out
