"""Conformance suites through pytester: good providers pass, contract breakers fail."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")

BAD_CHANNEL = """
import json
from typing import Any
import msgspec, pytest
from cartera_sdk import (BaseChannelProvider, DeliveryStatusEvent, OutboundMessage, Sent,
                         SmsContent, WebhookRequest, WebhookVerificationError)
from cartera_sdk.testkit import ChannelConformance, FakeHTTPServer, json_response
from datetime import datetime, timezone

class LeakyConfig(msgspec.Struct):
    base_url: str = ""
    api_token: str = ""          # a credential in Config: contract breach

class Sloppy(BaseChannelProvider):
    name = "sloppy"
    channel = "sms"
    Config = LeakyConfig

    async def send(self, message, ctx):
        async with ctx.http(ctx.config.base_url) as client:
            response = await client.post("/send", json={"to": message.to})
        response.raise_for_status()      # raises instead of classifying
        return Sent(provider_message_id=response.json()["id"])

    async def verify_webhook(self, request, ctx):
        if request.header("X-Sig") is None:
            raise WebhookVerificationError("missing_signature")
        # never checks the signature value: accepts tampered bodies

    def parse_webhook(self, request, ctx):
        return [DeliveryStatusEvent(event_id="", provider_message_id="m", status="sent",
                                    occurred_at=datetime.now(timezone.utc))]

class TestSloppy(ChannelConformance):
    @pytest.fixture
    def fake_server(self):
        with FakeHTTPServer() as server:
            server.route("POST", "/send", json_response({"id": "p1"}))
            yield server
    @pytest.fixture
    def provider(self): return Sloppy()
    @pytest.fixture
    def config(self, fake_server): return LeakyConfig(base_url=fake_server.base_url)
    @pytest.fixture
    def secrets(self): return Sloppy.Secrets()
    @pytest.fixture
    def send_route(self): return ("POST", "/send")
    @pytest.fixture
    def sample_message(self):
        return OutboundMessage(message_id="1", idempotency_key="k", to="+51999",
                               content=SmsContent(text="hola"))
    @pytest.fixture
    def signed_webhook(self):
        return WebhookRequest(method="POST", url="https://x.example/h", body=b"[]",
                              headers={"X-Sig": "whatever"})
"""


def test_contract_breaking_channel_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sloppy=BAD_CHANNEL)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    failed = {line.split("::")[-1].split(" ")[0] for line in result.outlines if "FAILED" in line}
    assert "test_credentials_live_in_secrets_not_config" in failed
    assert "test_verify_rejects_tampered_body" in failed
    assert "test_parse_returns_events_with_ids" in failed
    assert any(name.startswith("test_send_classifies_http_failures") for name in failed)
    assert "test_send_unreachable_provider_is_retryable" in failed
    # The clauses it does honour still pass.
    assert "test_send_returns_sent" not in failed
    assert "test_verify_rejects_missing_headers" not in failed
    assert outcomes["failed"] >= 9
    assert outcomes["passed"] >= 5


PACK = """
from datetime import date, datetime, time, timedelta
import msgspec, pytest
from cartera_sdk import (Allow, BaseCompliancePack, Defer, Deny, Holiday, Reason,
                         RuleDescription)
from cartera_sdk.testkit import CompliancePackConformance

HOURS = Reason(code="outside_hours", message="calls Mon-Fri 07:00-20:00",
               rule_ref="Ley 29571 art. 62.b")

class ToyPeConfig(msgspec.Struct, frozen=True):
    written_channels_follow_hours: bool = False

class ToyPe(BaseCompliancePack):
    name = "toy_pe"
    country = "PE"
    Config = ToyPeConfig

    def calendar(self, year, subdivision=None):
        return [Holiday(date=date(year, 1, 1), name="Año Nuevo"),
                Holiday(date=date(year, 7, 28), name="Fiestas Patrias")]

    def rules(self):
        return [RuleDescription(code="outside_hours", title="Hours", description="Calls and "
                                "visits only Mon-Fri 07-20, not on holidays."),
                RuleDescription(code="third_party", title="Third parties",
                                description="No collection contact with third parties."),
                RuleDescription(code="within_hours", title="Allowed", description="Allowed.")]

    def _ok(self, local):
        days = {h.date for h in self.calendar(local.year)}
        return local.weekday() < 5 and local.date() not in days and 7 <= local.hour < 20

    def judge(self, contact, config):
        if contact.recipient_role not in ("debtor", "guarantor"):
            return Deny(reasons=[Reason(code="third_party", message="third party")])
        timed = contact.channel in ("voice", "visit") or config.written_channels_follow_hours
        local = contact.local_planned_at
        if not timed or self._ok(local):
            return Allow(reasons=[Reason(code="within_hours", message="allowed")])
        day = local.date() if local.hour < 7 else local.date() + timedelta(days=1)
        while not self._ok(datetime.combine(day, time(7), local.tzinfo)):
            day += timedelta(days=1)
        return Defer(until=datetime.combine(day, time(7), local.tzinfo), reasons=[HOURS])

class TestToyPe(CompliancePackConformance):
    @pytest.fixture
    def pack(self): return ToyPe()
    @pytest.fixture
    def debtor_timezone(self): return "America/Lima"

class TestToyPeStrict(TestToyPe):
    @pytest.fixture
    def pack_config(self): return ToyPeConfig(written_channels_follow_hours=True)
"""


def test_compliance_pack_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_toy_pe=PACK)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=24)


def test_compliance_pack_with_undeclared_reason_fails(pytester: pytest.Pytester) -> None:
    broken = PACK.replace(
        'RuleDescription(code="within_hours", title="Allowed", description="Allowed.")', ""
    ).replace("class TestToyPeStrict(TestToyPe):", "class _Unused(TestToyPe):")
    pytester.makepyfile(test_toy_pe=broken)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=11, failed=1)
    result.stdout.fnmatch_lines(["*within_hours*not listed in rules()*"])


def test_compliance_pack_deferring_too_late_fails(pytester: pytest.Pytester) -> None:
    late = PACK.replace("return Defer(until=datetime.combine(day, time(7), local.tzinfo)",
                        "return Defer(until=datetime.combine(day, time(8), local.tzinfo)")
    late = late.replace("class TestToyPeStrict(TestToyPe):", "class _Unused(TestToyPe):")
    assert late != PACK
    pytester.makepyfile(test_toy_pe=late)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*allowed one minute before Defer.until*not minimal*"])
    assert result.ret != 0


ERP = """
import pytest
from datetime import date
from cartera_sdk import (BaseErpConnector, ErpDebtor, ErpOpenItem, ErpPaymentPosting,
                         ErpPostingResult, Money, Page)
from cartera_sdk.testkit import ErpConnectorConformance

DEBTORS = [ErpDebtor(external_id=f"C{i}", name=f"Cliente {i}", country="CL") for i in range(5)]
ITEMS = [ErpOpenItem(external_id=f"I{i}", debtor_external_id="C1", document_number=str(i),
                     kind="invoice", issue_date=date(2026, 1, 1), due_date=date(2026, 2, 1),
                     original_amount=Money.of("1000", "CLP"), open_amount=Money.of("500", "CLP"))
         for i in range(3)]

class MemoryErp(BaseErpConnector):
    name = "memory_erp"
    def __init__(self):
        self.posted = {}
    def _page(self, rows, cursor, limit):
        start = int(cursor or 0)
        end = start + limit
        return Page(items=rows[start:end], next_cursor=str(end) if end < len(rows) else None)
    async def pull_debtors(self, cursor, limit, ctx): return self._page(DEBTORS, cursor, limit)
    async def pull_open_items(self, cursor, limit, ctx): return self._page(ITEMS, cursor, limit)
    async def post_payment(self, posting, ctx):
        if posting.idempotency_key in self.posted:
            return ErpPostingResult(status="duplicate",
                                    erp_document_id=self.posted[posting.idempotency_key])
        self.posted[posting.idempotency_key] = doc = f"DOC{len(self.posted) + 1}"
        return ErpPostingResult(status="posted", erp_document_id=doc)


class TestMemoryErp(ErpConnectorConformance):
    @pytest.fixture
    def provider(self): return MemoryErp()
    @pytest.fixture
    def config(self): return MemoryErp.Config()
    @pytest.fixture
    def secrets(self): return MemoryErp.Secrets()
    @pytest.fixture
    def fake_server(self): return None
    @pytest.fixture
    def sample_posting(self):
        return ErpPaymentPosting(idempotency_key="k1", debtor_external_id="C1",
                                 amount=Money.of("500", "CLP"), value_date=date(2026, 3, 2),
                                 reference="MP-1")
"""


def test_erp_connector_passes_and_duplicate_posting_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_memory_erp=ERP)
    good = pytester.runpytest("-q", "-p", "no:cacheprovider")
    good.assert_outcomes(passed=7, skipped=5)
    not_idempotent = ERP.replace("if posting.idempotency_key in self.posted:", "if False:")
    pytester.makepyfile(test_memory_erp=not_idempotent)
    bad = pytester.runpytest("-q", "-p", "no:cacheprovider")
    bad.assert_outcomes(passed=6, failed=1, skipped=5)
    bad.stdout.fnmatch_lines(["*test_post_payment_is_idempotent*"])
