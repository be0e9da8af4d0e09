"""The ERP conformance suite passes a correct in-memory connector and catches broken ones."""

from __future__ import annotations

import pytest

ERP = '''
import json
from datetime import date

import pytest
from cartera_sdk import (BaseErpConnector, ErpDebtor, ErpOpenItem, ErpPostingResult,
                         ErpPaymentPosting, ErpRowError, Money, Page)
from cartera_sdk.errors import RetryableError
from cartera_sdk.testkit.erp_conformance import ErpConformance


class Ledger:
    """The "ERP": rows with a change counter, an outage switch and posted documents."""

    def __init__(self):
        self.clock = 0
        self.debtors = {f"C{i}": [f"Cliente {i}", 0] for i in range(5)}
        self.items = {f"I{i}": ["1000", 0] for i in range(5)}
        self.outage = None
        self.documents = {}

    def check(self):
        if self.outage:
            raise RetryableError(f"http_{self.outage}", "down")

    def touch_debtor(self):
        self.clock += 1
        self.debtors["C2"][1] = self.clock
        return "C2"

    def touch_open_item(self):
        self.clock += 1
        self.items["I3"][1] = self.clock
        return "I3"

    def corrupt_open_item(self):
        self.items["I1"][0] = "1.000,00"
        return "I1"

    def set_outage(self, status):
        self.outage = status

    def posted_count(self):
        return len(self.documents)


LEDGER = Ledger()


class MemoryErp(BaseErpConnector):
    name = "memory_erp"

    def _pull(self, rows, cursor, limit, make):
        LEDGER.check()
        state = json.loads(cursor) if cursor else {"since": -1, "start": None, "at": 0}
        if state["start"] is None:
            state["start"] = LEDGER.clock
        keys = [k for k in sorted(rows) if rows[k][1] > state["since"]]
        chunk = keys[state["at"]:state["at"] + limit]
        items, errors = [], []
        for key in chunk:
            try:
                items.append(make(key, rows[key][0]))
            except ValueError as exc:
                errors.append(ErpRowError(row_key=key, code="bad_amount", message=str(exc)))
        state["at"] += len(chunk)
        if state["at"] < len(keys):
            return Page(items=items, next_cursor=json.dumps(state), errors=errors)
        delta = json.dumps({"since": state["start"], "start": None, "at": 0})
        return Page(items=items, delta_cursor=delta, errors=errors)

    async def pull_debtors(self, cursor, limit, ctx):
        return self._pull(LEDGER.debtors, cursor, limit,
                          lambda k, name: ErpDebtor(external_id=k, name=name))

    async def pull_open_items(self, cursor, limit, ctx):
        def item(key, amount):
            money = Money.of(amount, "CLP")
            return ErpOpenItem(external_id=key, debtor_external_id="C1", document_number=key,
                               kind="invoice", issue_date=date(2026, 1, 1),
                               due_date=date(2026, 2, 1), original_amount=money,
                               open_amount=money)
        return self._pull(LEDGER.items, cursor, limit, item)

    async def post_payment(self, posting, ctx):
        LEDGER.check()
        if posting.idempotency_key in LEDGER.documents:
            return ErpPostingResult(status="duplicate",
                                    erp_document_id=LEDGER.documents[posting.idempotency_key])
        LEDGER.documents[posting.idempotency_key] = doc = f"DOC{len(LEDGER.documents) + 1}"
        return ErpPostingResult(status="posted", erp_document_id=doc)


class TestMemoryErp(ErpConformance):
    @pytest.fixture
    def erp_fake(self):
        global LEDGER
        LEDGER = Ledger()
        return LEDGER
    @pytest.fixture
    def provider(self): return MemoryErp()
    @pytest.fixture
    def config(self): return MemoryErp.Config()
    @pytest.fixture
    def secrets(self): return MemoryErp.Secrets()
    @pytest.fixture
    def sample_posting(self):
        return ErpPaymentPosting(idempotency_key="k1", debtor_external_id="C1",
                                 amount=Money.of("500", "CLP"), value_date=date(2026, 3, 2),
                                 reference="MP-1")
'''

PASSED, SKIPPED = 14, 7  # skipped: 4 webhook checks, plugin hook, payments stream, read-only


def _outcome(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_memory_erp=source)
    return pytester.runpytest("-q", "-p", "no:cacheprovider")


def test_a_correct_connector_passes(pytester: pytest.Pytester) -> None:
    _outcome(pytester, ERP).assert_outcomes(passed=PASSED, skipped=SKIPPED)


@pytest.mark.parametrize(
    ("breakage", "original", "failing"),
    [
        ("posting is not idempotent", "if posting.idempotency_key in LEDGER.documents:",
         "test_posting_twice_posts_once"),
        ("deltas re-read everything", 'delta = json.dumps({"since": state["start"],',
         "test_delta_returns_changes_not_everything"),
        ("malformed rows raise", "except ValueError as exc:",
         "test_malformed_row_is_a_row_error_not_an_exception"),
    ],
)
def test_a_broken_connector_fails(
    pytester: pytest.Pytester, breakage: str, original: str, failing: str
) -> None:
    replacement = {
        "if posting.idempotency_key in LEDGER.documents:": "if False:",
        'delta = json.dumps({"since": state["start"],': 'delta = json.dumps({"since": -1,',
        "except ValueError as exc:": "except ZeroDivisionError as exc:",
    }[original]
    assert original in ERP, breakage
    result = _outcome(pytester, ERP.replace(original, replacement))
    assert result.ret != 0, f"{breakage} must fail the suite"
    result.stdout.fnmatch_lines([f"*{failing}*"])
