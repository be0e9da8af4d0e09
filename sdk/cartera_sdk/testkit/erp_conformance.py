"""The ERP connector conformance suite: paging, resumable cursors, deltas, row errors,
outages and idempotent posting, checked against the partner's strict fake of the ERP.

Subclass :class:`ErpConformance` in a ``test_*.py`` module and define the fixtures:

* ``provider``, ``config`` (pointing at the fake), ``secrets``;
* ``erp_fake``: an object with the :class:`ErpFake` controls over the fake's data;
* ``sample_posting``: an :class:`~cartera_sdk.erp.ErpPaymentPosting` the fake accepts
  (needed unless the connector sets ``writes_payments = False``);
* optional ``plugin`` (checks the registration hook).

The fake must hold more than ``page_size`` debtors and open items. Every test drives the
connector through :class:`~cartera_sdk.testkit.host.FakeHost` contexts, as the host would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import pytest

from ..erp import ErpConnector, ErpDebtor, ErpOpenItem, ErpPayment, ErpPaymentPosting, Page
from ..errors import ProviderError
from ..money import Money
from .conformance import _ProviderChecks
from .host import FakeHost, run

__all__ = ["ErpConformance", "ErpFake"]

Pull = Callable[[str | None, int, Any], Any]
_STREAMS = {"debtors": "pull_debtors", "open_items": "pull_open_items",
            "payments": "pull_payments"}  # fmt: skip
_ROW_TYPES: dict[str, type] = {"debtors": ErpDebtor, "open_items": ErpOpenItem,
                               "payments": ErpPayment}  # fmt: skip


@runtime_checkable
class ErpFake(Protocol):
    """Controls the suite needs over the partner's fake ERP."""

    def touch_debtor(self) -> str:
        """Change one debtor as an ERP user would; return its ``external_id``."""
        ...

    def touch_open_item(self) -> str:
        """Change one open item (amount paid, due date...); return its ``external_id``."""
        ...

    def corrupt_open_item(self) -> str:
        """Make one open item's row unmappable (e.g. a malformed amount); return the
        ``external_id`` it had."""
        ...

    def set_outage(self, status: int | None) -> None:
        """Answer every request with HTTP ``status`` (``None`` ends the outage)."""
        ...

    def posted_count(self) -> int:
        """How many payment documents the fake holds."""
        ...


class ErpConformance(_ProviderChecks):
    """Contract tests for an :class:`~cartera_sdk.erp.ErpConnector` against its fake.

    What each test checks: the connector implements the protocol and declares its streams;
    every stream pages within the limit, never repeats a row, and a stored cursor resumes
    exactly after the rows already returned (also on a fresh connector instance, as after
    a restart); open items carry exact money in ISO currencies with non-negative amounts;
    the last page carries a ``delta_cursor`` and a delta returns the changed rows but not
    the whole ERP; a malformed row is a ``Page.errors`` entry while the page's other rows
    still arrive; an outage raises a retryable ``ProviderError`` and the same cursor works
    once it ends; posting twice posts once (``posted`` then ``duplicate`` with the same
    document id, also from a fresh instance), an outage during a post raises retryable and
    the retry posts exactly once; secrets never reach the logs.
    """

    page_size: ClassVar[int] = 2
    max_pages: ClassVar[int] = 10_000

    @pytest.fixture
    def signed_webhook(self) -> Any:
        pytest.skip("ERP connectors receive no webhooks")

    @pytest.fixture
    def sample_posting(self) -> ErpPaymentPosting | None:
        """A posting the fake accepts; required when the connector writes payments."""
        return None

    # ------------------------------------------------------------------ helpers

    def _pull(self, provider: Any, stream: str) -> Pull:
        return getattr(provider, _STREAMS[stream])  # type: ignore[no-any-return]

    def _run(self, pull: Pull, ctx: Any, cursor: str | None = None) -> list[Page[Any]]:
        """Pages of one run, from ``cursor`` to the page without ``next_cursor``."""
        pages: list[Page[Any]] = []
        for _ in range(self.max_pages):
            page = run(pull(cursor, self.page_size, ctx))
            assert isinstance(page, Page), f"a pull must return a Page, got {page!r}"
            assert len(page.items) <= self.page_size, "a page must respect the limit"
            pages.append(page)
            if page.next_cursor is None:
                assert page.delta_cursor, "the last page of a run must carry a delta_cursor"
                return pages
            assert page.delta_cursor is None, "only the last page carries a delta_cursor"
            assert page.next_cursor != cursor, "the cursor must advance"
            cursor = page.next_cursor
        raise AssertionError("the pull did not terminate")

    @staticmethod
    def _ids(pages: list[Page[Any]]) -> list[str]:
        return [item.external_id for page in pages for item in page.items]

    def _streams(self, provider: Any) -> list[str]:
        return sorted(getattr(provider, "streams", {"debtors", "open_items"}))

    def _writes(self, provider: Any, sample_posting: ErpPaymentPosting | None) -> None:
        if not getattr(provider, "writes_payments", True):
            pytest.skip("this connector is read-only")
        assert sample_posting is not None, "define `sample_posting` for a connector that writes"

    # ------------------------------------------------------------------ shape

    def test_implements_protocol(self, provider: Any, erp_fake: Any) -> None:
        assert isinstance(provider, ErpConnector)
        assert isinstance(erp_fake, ErpFake), "erp_fake must offer the ErpFake controls"
        streams = self._streams(provider)
        assert {"debtors", "open_items"} <= set(streams)
        assert set(streams) <= set(_STREAMS), f"unknown streams {streams}"

    # ------------------------------------------------------------------ paging

    @pytest.mark.parametrize("stream", ["debtors", "open_items", "payments"])
    def test_stream_pages_and_resumes_exactly(
        self, provider: Any, ctx: Any, erp_fake: Any, host: FakeHost, config: Any,
        secrets: Any, stream: str,
    ) -> None:  # fmt: skip
        if stream not in self._streams(provider):
            pytest.skip(f"the connector does not serve {stream}")
        pull = self._pull(provider, stream)
        pages = self._run(pull, ctx)
        assert all(isinstance(row, _ROW_TYPES[stream]) for p in pages for row in p.items)
        ids = self._ids(pages)
        if stream != "payments":
            assert len(ids) > self.page_size, "the fake must hold more than one page"
        assert len(ids) == len(set(ids)), "rows must not repeat within a run"
        first = run(pull(None, self.page_size, ctx))
        if first.next_cursor is None:
            return
        restarted = type(provider)()  # a restart: only the stored cursor survives
        fresh_ctx = host.context(restarted, config=config, secrets=secrets)
        rest = self._ids(self._run(self._pull(restarted, stream), fresh_ctx, first.next_cursor))
        assert [i.external_id for i in first.items] + rest == ids, (
            "resuming from a stored cursor must continue exactly after the rows returned"
        )

    def test_items_are_exact_and_well_formed(self, provider: Any, ctx: Any, erp_fake: Any) -> None:
        pages = self._run(provider.pull_open_items, ctx)
        items = [item for page in pages for item in page.items]
        assert all(not page.errors for page in pages), "the fake's rows must all map cleanly"
        for item in items:
            assert isinstance(item, ErpOpenItem)
            assert isinstance(item.open_amount, Money)
            assert item.open_amount.currency == item.original_amount.currency
            assert item.open_amount.amount >= 0, "amounts are never negative (kind says credit)"
            assert item.original_amount.amount >= 0, "amounts are never negative"
            assert item.status in ("open", "cleared", "cancelled")
            if item.status != "open":
                assert item.open_amount.is_zero(), "a closed item owes nothing"
            assert item.debtor_external_id
        assert any(item.status == "open" for item in items), "a full pull returns open items"
        debtors = [d for p in self._run(provider.pull_debtors, ctx) for d in p.items]
        assert all(isinstance(d, ErpDebtor) and d.external_id and d.name for d in debtors)

    # ------------------------------------------------------------------ deltas

    @pytest.mark.parametrize(("stream", "touch"), [("debtors", "touch_debtor"),
                                                   ("open_items", "touch_open_item")])
    def test_delta_returns_changes_not_everything(
        self, provider: Any, ctx: Any, erp_fake: Any, stream: str, touch: str
    ) -> None:
        pull = self._pull(provider, stream)
        full = self._run(pull, ctx)
        everything = set(self._ids(full))
        changed = getattr(erp_fake, touch)()
        delta = self._run(pull, ctx, full[-1].delta_cursor)
        seen = set(self._ids(delta))
        assert changed in seen, f"the delta must return the changed row {changed!r}"
        assert len(seen) < len(everything), "a delta must not re-read the whole ERP"

    # ------------------------------------------------------------------ bad input and faults

    def test_malformed_row_is_a_row_error_not_an_exception(
        self, provider: Any, ctx: Any, erp_fake: Any
    ) -> None:
        before = set(self._ids(self._run(provider.pull_open_items, ctx)))
        broken = erp_fake.corrupt_open_item()
        pages = self._run(provider.pull_open_items, ctx)
        errors = [error for page in pages for error in page.errors]
        assert errors, "the malformed row must be reported in Page.errors"
        assert all(error.code and error.message for error in errors)
        after = set(self._ids(pages))
        assert broken not in after
        assert before - {broken} <= after, "the page's other rows must still arrive"

    def test_outage_is_retryable_and_the_cursor_survives(
        self, provider: Any, ctx: Any, erp_fake: Any
    ) -> None:
        first = run(provider.pull_open_items(None, self.page_size, ctx))
        expected = self._ids(self._run(provider.pull_open_items, ctx, first.next_cursor))
        for status in (500, 503):
            erp_fake.set_outage(status)
            with pytest.raises(ProviderError) as info:
                run(provider.pull_open_items(first.next_cursor, self.page_size, ctx))
            assert info.value.kind == "retryable", f"HTTP {status} must be retryable"
        erp_fake.set_outage(None)
        resumed = self._ids(self._run(provider.pull_open_items, ctx, first.next_cursor))
        assert resumed == expected

    # ------------------------------------------------------------------ posting

    def test_posting_twice_posts_once(
        self, provider: Any, ctx: Any, erp_fake: Any, sample_posting: ErpPaymentPosting | None,
        host: FakeHost, config: Any, secrets: Any,
    ) -> None:  # fmt: skip
        self._writes(provider, sample_posting)
        before = erp_fake.posted_count()
        first = run(provider.post_payment(sample_posting, ctx))
        assert first.status == "posted", f"expected posted, got {first!r}"
        assert first.erp_document_id
        second = run(provider.post_payment(sample_posting, ctx))
        restarted = type(provider)()
        third = run(restarted.post_payment(
            sample_posting, host.context(restarted, config=config, secrets=secrets)))
        for again in (second, third):
            assert again.status == "duplicate"
            assert again.erp_document_id == first.erp_document_id
        assert erp_fake.posted_count() == before + 1

    def test_posting_during_an_outage_is_retryable_then_posts_once(
        self, provider: Any, ctx: Any, erp_fake: Any, sample_posting: ErpPaymentPosting | None
    ) -> None:
        self._writes(provider, sample_posting)
        before = erp_fake.posted_count()
        erp_fake.set_outage(503)
        with pytest.raises(ProviderError) as info:
            run(provider.post_payment(sample_posting, ctx))
        assert info.value.kind == "retryable"
        erp_fake.set_outage(None)
        assert run(provider.post_payment(sample_posting, ctx)).status == "posted"
        assert run(provider.post_payment(sample_posting, ctx)).status == "duplicate"
        assert erp_fake.posted_count() == before + 1

    def test_read_only_connector_rejects_postings(
        self, provider: Any, ctx: Any, erp_fake: Any, sample_posting: ErpPaymentPosting | None
    ) -> None:
        if getattr(provider, "writes_payments", True):
            pytest.skip("this connector writes payments")
        if sample_posting is None:
            pytest.skip("define `sample_posting` to check the rejection")
        result = run(provider.post_payment(sample_posting, ctx))
        assert result.status == "rejected"
        assert result.message

    def test_secrets_never_logged(
        self, provider: Any, ctx: Any, erp_fake: Any, host: FakeHost, secrets: Any,
        sample_posting: ErpPaymentPosting | None,
    ) -> None:  # fmt: skip
        for stream in self._streams(provider):
            self._run(self._pull(provider, stream), ctx)
        if sample_posting is not None:
            run(provider.post_payment(sample_posting, ctx))
        run(provider.test_connection(ctx))
        assert host.leaked_secrets(secrets) == []
