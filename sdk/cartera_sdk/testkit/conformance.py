"""Conformance suites a partner runs against their provider.

Subclass the suite in a test module named ``test_*.py`` (class name ``Test*``) and define
the fixtures listed in the class docstring; every ``test_*`` method then checks one clause
of the contract. Nothing here needs pytest-asyncio: coroutines are run with
:func:`~cartera_sdk.testkit.host.run`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, get_args
from zoneinfo import ZoneInfo

import msgspec
import pytest

from ..channels import (
    ChannelKind,
    ChannelProvider,
    DeliveryStatusEvent,
    InboundMessage,
    OutboundMessage,
    SendFailure,
    Sent,
)
from ..compliance import (
    Allow,
    ChargeFinding,
    ChargeQuery,
    CompliancePack,
    ContactChannel,
    ContactVerdict,
    Defer,
    Deny,
    Holiday,
    InvalidContact,
    PlannedContact,
    RecipientRole,
)
from ..erp import ErpConnector, ErpPaymentPosting, Page
from ..errors import WebhookVerificationError
from ..integration import integration_schema
from ..registry import collect
from ..webhooks import WebhookRequest
from .channel_checks import ChannelRequestChecks
from .fakeserver import FakeHTTPServer, json_response
from .host import FakeHost, as_received, run

__all__ = [
    "ChannelConformance",
    "CompliancePackConformance",
    "ErpConnectorConformance",
]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_SECRETISH = re.compile(r"(secret|token|password|passwd|api_?key|private_?key)", re.I)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def __getattr__(name: str) -> Any:
    """``PaymentProviderConformance`` lives in :mod:`.payment_conformance` (imported lazily:
    that module builds on ``_ProviderChecks`` here)."""
    if name == "PaymentProviderConformance":
        from .payment_conformance import PaymentProviderConformance

        return PaymentProviderConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _tampered(body: bytes) -> bytes:
    """The body with its last byte changed (or one byte added to an empty body)."""
    if not body:
        return b"x"
    last = body[-1:]
    return body[:-1] + (b"0" if last != b"0" else b"1")


class _ProviderChecks:
    """Checks shared by every configurable provider kind."""

    #: Set to False for schemes that do not sign the body (Mercado Pago signs a manifest).
    signs_body: ClassVar[bool] = True

    @pytest.fixture
    def host(self) -> FakeHost:
        """The fake host; override to supply your own clock."""
        return FakeHost()

    @pytest.fixture
    def ctx(self, host: FakeHost, provider: Any, config: Any, secrets: Any) -> Any:
        """The context handed to every call."""
        return host.context(provider, config=config, secrets=secrets)

    @pytest.fixture
    def plugin(self) -> object | None:
        """Your plugin module/object; set it to check the registration hook."""
        return None

    def test_name_is_a_slug(self, provider: Any) -> None:
        assert isinstance(provider.name, str)
        assert _NAME.match(provider.name), f"name {provider.name!r} must match {_NAME.pattern}"

    def test_config_and_secrets_are_structs_with_json_schema(
        self, provider: Any, config: Any, secrets: Any
    ) -> None:
        assert issubclass(provider.Config, msgspec.Struct), "Config must be a msgspec Struct"
        assert issubclass(provider.Secrets, msgspec.Struct), "Secrets must be a msgspec Struct"
        schema = integration_schema(provider)
        assert schema["config"]
        assert schema["secrets"]
        assert isinstance(config, provider.Config)
        assert isinstance(secrets, provider.Secrets)
        encoded = msgspec.json.encode(config)
        assert msgspec.json.decode(encoded, type=provider.Config) == config

    def test_credentials_live_in_secrets_not_config(self, provider: Any) -> None:
        leaked = [f for f in provider.Config.__struct_fields__ if _SECRETISH.search(f)]
        assert not leaked, f"Config fields {leaked} look like credentials; move them to Secrets"

    def test_plugin_registers_provider(self, plugin: object | None, provider: Any) -> None:
        if plugin is None:
            pytest.skip("define a `plugin` fixture to check the registration hook")
        registered = [
            item
            for hook in (
                "register_channels",
                "register_payment_providers",
                "register_erp_connectors",
            )
            if hasattr(plugin, hook)
            for item in collect(plugin, hook)
        ]
        assert provider.name in {getattr(p, "name", None) for p in registered}

    def _verify_rejects(self, provider: Any, request: WebhookRequest, ctx: Any) -> None:
        with pytest.raises(WebhookVerificationError):
            run(provider.verify_webhook(request, ctx))

    def test_verify_accepts_signed_webhook(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        assert run(provider.verify_webhook(signed_webhook, ctx)) is None

    def test_verify_rejects_tampered_body(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        if not self.signs_body:
            pytest.skip("this provider's signature does not cover the body")
        tampered = signed_webhook.with_body(_tampered(signed_webhook.body))
        self._verify_rejects(provider, tampered, ctx)

    def test_verify_rejects_missing_headers(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        self._verify_rejects(provider, signed_webhook.with_headers({}), ctx)

    def test_verify_rejects_wrong_secret(
        self,
        provider: Any,
        signed_webhook: WebhookRequest,
        host: FakeHost,
        config: Any,
        secrets: Any,
    ) -> None:
        changed = {
            name: getattr(secrets, name) + "x"
            for name in secrets.__struct_fields__
            if isinstance(getattr(secrets, name), str)
        }
        if not changed:
            pytest.skip("no string secrets to alter")
        wrong = msgspec.structs.replace(secrets, **changed)
        self._verify_rejects(
            provider, signed_webhook, host.context(provider, config=config, secrets=wrong)
        )


class ChannelConformance(ChannelRequestChecks, _ProviderChecks):
    """Contract tests for a :class:`~cartera_sdk.channels.ChannelProvider`.

    Fixtures to define: ``provider``, ``config``, ``secrets``, ``sample_message``
    (an :class:`OutboundMessage` your fake accepts), ``signed_webhook`` (a genuinely signed
    :class:`WebhookRequest` with at least one event) and ``fake_server`` (the
    :class:`FakeHTTPServer` your ``config`` points at). Optional: ``send_route``
    (``("POST", "/path")`` of the send endpoint, enables failure-classification tests),
    ``error_in_ok_response`` (the 2xx your provider answers when it refuses a message)
    and ``plugin``. Your fake must be strict: it refuses wrong credentials, and the suite
    checks the request it received carries the recipient, the text and ``message_id``.
    Declare ``webhook_signature`` on the provider when the signature is not in a header.
    """

    @pytest.fixture
    def send_route(self) -> tuple[str, str] | None:
        """``(method, path)`` of your send endpoint on ``fake_server``."""
        return None

    def test_implements_protocol(self, provider: Any) -> None:
        assert isinstance(provider, ChannelProvider)
        assert provider.channel in get_args(ChannelKind)

    def test_send_returns_sent(
        self, provider: Any, sample_message: OutboundMessage, ctx: Any, fake_server: Any
    ) -> None:
        result = run(provider.send(sample_message, ctx))
        assert isinstance(result, Sent), f"expected Sent from the fake, got {result!r}"
        assert result.provider_message_id

    @pytest.mark.parametrize(
        ("status", "kind"),
        [(429, "rate_limited"), (500, "retryable"), (503, "retryable"), (400, "permanent"),
         (401, "permanent")],
    )  # fmt: skip
    def test_send_classifies_http_failures(
        self,
        provider: Any,
        sample_message: OutboundMessage,
        ctx: Any,
        fake_server: FakeHTTPServer,
        send_route: tuple[str, str] | None,
        status: int,
        kind: str,
    ) -> None:
        if send_route is None:
            pytest.skip("define `send_route` to check failure classification")
        headers = {"Retry-After": "1"} if status == 429 else {}
        body = {"error": {"code": status, "message": "conformance failure"}}
        fake_server.route(*send_route, json_response(body, status, headers))
        result = run(provider.send(sample_message, ctx))
        assert isinstance(result, SendFailure), f"HTTP {status} must give SendFailure"
        assert result.kind == kind, f"HTTP {status} must be {kind}, got {result.kind}"
        assert result.code

    def test_send_unreachable_provider_is_retryable(
        self, provider: Any, sample_message: OutboundMessage, ctx: Any, fake_server: Any
    ) -> None:
        if not isinstance(fake_server, FakeHTTPServer):
            pytest.skip("needs a FakeHTTPServer")
        fake_server.stop()
        result = run(provider.send(sample_message, ctx))
        assert isinstance(result, SendFailure)
        assert result.kind == "retryable"

    def test_parse_returns_events_with_ids(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        events = provider.parse_webhook(as_received(signed_webhook), ctx)
        assert isinstance(events, list)
        assert events, "the signed webhook must yield events"
        ids = []
        for event in events:
            assert isinstance(event, DeliveryStatusEvent | InboundMessage)
            assert event.event_id
            assert event.provider_message_id
            assert event.occurred_at.tzinfo is not None, "occurred_at must be aware"
            ids.append(event.event_id)
        assert len(ids) == len(set(ids)), "event ids must be unique within a delivery"

    def test_parse_is_deterministic(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        request = as_received(signed_webhook)
        assert provider.parse_webhook(request, ctx) == provider.parse_webhook(request, ctx)

    def test_regular_webhook_is_not_a_handshake(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        assert run(provider.handshake(signed_webhook, ctx)) is None

    def test_secrets_never_logged(
        self,
        provider: Any,
        sample_message: OutboundMessage,
        signed_webhook: WebhookRequest,
        ctx: Any,
        host: FakeHost,
        secrets: Any,
        fake_server: Any,
    ) -> None:
        run(provider.send(sample_message, ctx))
        run(provider.verify_webhook(signed_webhook, ctx))
        provider.parse_webhook(as_received(signed_webhook), ctx)
        assert host.leaked_secrets(secrets) == []


class ErpConnectorConformance(_ProviderChecks):
    """Contract tests for an :class:`~cartera_sdk.erp.ErpConnector`.

    Fixtures to define: ``provider`` (the connector), ``config``, ``secrets``,
    ``fake_server`` (holding more than ``page_size`` debtors and open items) and
    ``sample_posting``. ERP connectors receive no webhooks, so the webhook checks are skipped.
    """

    page_size: ClassVar[int] = 2
    max_pages: ClassVar[int] = 10_000

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        pytest.skip("ERP connectors receive no webhooks")

    def test_implements_protocol(self, provider: Any) -> None:
        assert isinstance(provider, ErpConnector)

    def _pull_all(self, pull: Any, ctx: Any, cursor: str | None = None) -> list[list[Any]]:
        pages: list[list[Any]] = []
        for _ in range(self.max_pages):
            page = run(pull(cursor, self.page_size, ctx))
            assert isinstance(page, Page)
            assert len(page.items) <= self.page_size, "a page must respect the limit"
            pages.append(page.items)
            if page.next_cursor is None:
                return pages
            assert page.next_cursor != cursor, "the cursor must advance"
            cursor = page.next_cursor
        raise AssertionError("pull did not terminate")

    def _check_pull(self, pull: Any, ctx: Any) -> None:
        pages = self._pull_all(pull, ctx)
        items = [item for page in pages for item in page]
        ids = [item.external_id for item in items]
        assert len(ids) > self.page_size, "the fake must hold more than one page"
        assert len(ids) == len(set(ids)), "items must not repeat across pages"
        first = run(pull(None, self.page_size, ctx))
        assert first.next_cursor is not None
        resumed = [i.external_id for p in self._pull_all(pull, ctx, first.next_cursor) for i in p]
        assert resumed == ids[len(first.items) :], "resuming from a cursor must continue exactly"

    def test_pull_debtors_pages_and_resumes(
        self, provider: Any, ctx: Any, fake_server: Any
    ) -> None:
        self._check_pull(provider.pull_debtors, ctx)

    def test_pull_open_items_pages_and_resumes(
        self, provider: Any, ctx: Any, fake_server: Any
    ) -> None:
        self._check_pull(provider.pull_open_items, ctx)

    def test_post_payment_is_idempotent(
        self, provider: Any, sample_posting: ErpPaymentPosting, ctx: Any, fake_server: Any
    ) -> None:
        first = run(provider.post_payment(sample_posting, ctx))
        second = run(provider.post_payment(sample_posting, ctx))
        assert first.status == "posted"
        assert first.erp_document_id
        assert second.status == "duplicate"
        assert second.erp_document_id == first.erp_document_id


_CHANNELS: tuple[str, ...] = get_args(ContactChannel)


def _transitions(zone_name: str, year: int) -> list[datetime]:
    """The UTC instants in ``year`` at which ``zone_name`` changes its UTC offset."""
    zone = ZoneInfo(zone_name)
    out = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    previous = at.astimezone(zone).utcoffset()
    while at.year == year:
        nxt = at + timedelta(hours=1)
        offset = nxt.astimezone(zone).utcoffset()
        if offset != previous:
            out.append(nxt)
            previous = offset
        at = nxt
    return out


class CompliancePackConformance:
    """Contract tests for a :class:`~cartera_sdk.compliance.CompliancePack`.

    Fixtures to define: ``pack``; optional ``pack_config`` (default ``pack.Config()``),
    ``debtor_timezone`` (IANA zone), ``subdivisions``, ``sweep_start`` (an aware Monday),
    ``contact_defaults`` (extra :class:`PlannedContact` fields for every swept contact, e.g.
    ``authorized_channels``) and ``extra_contacts`` (contacts with histories, content,
    DST instants: checked like the sweep). Set ``third_party_contact_allowed = True`` if
    your law permits collection contact with unrelated third parties, and
    ``closes_on_holidays = True`` if a call at 10:00 on a public holiday must not be allowed.

    Every check is pure: no I/O, and the same contact gives the same verdict. A ``Defer``
    must be minimal: the pack allows the contact at ``until`` and does not allow it one
    minute earlier. If the pack has ``timezones`` (the country's IANA zones), each DST
    transition of the sweep's year is swept every 15 minutes, and zones outside the country
    and subdivisions that do not exist must raise ``InvalidContact``.

    .. versionchanged:: 0.1.1 minimality, DST, holiday and bad-input checks.
    """

    third_party_contact_allowed: ClassVar[bool] = False
    closes_on_holidays: ClassVar[bool] = False

    @pytest.fixture
    def contact_defaults(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def extra_contacts(self) -> list[PlannedContact]:
        return []

    @pytest.fixture
    def pack_config(self, pack: Any) -> Any:
        return pack.Config()

    @pytest.fixture
    def debtor_timezone(self) -> str:
        return "UTC"

    @pytest.fixture
    def subdivisions(self) -> list[str | None]:
        return [None]

    @pytest.fixture
    def sweep_start(self) -> datetime:
        return datetime(2026, 3, 2, 0, 0, tzinfo=UTC)

    def _planned(
        self,
        pack: Any,
        tz: str,
        at: datetime,
        channel: str,
        role: str = "debtor",
        subdivision: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> PlannedContact:
        return PlannedContact(
            channel=channel,  # type: ignore[arg-type]
            planned_at=at,
            debtor_country=pack.country,
            debtor_timezone=tz,
            debtor_subdivision=subdivision,
            recipient_role=role,  # type: ignore[arg-type]
            **(defaults or {}),
        )

    @pytest.fixture
    def sweep(
        self,
        pack: Any,
        pack_config: Any,
        debtor_timezone: str,
        subdivisions: list[str | None],
        sweep_start: datetime,
        contact_defaults: dict[str, Any],
        extra_contacts: list[PlannedContact],
    ) -> list[tuple[PlannedContact, ContactVerdict]]:
        """Every channel, every 30 minutes of one week, per subdivision; then the extras."""
        out = []
        for subdivision in subdivisions:
            for step in range(7 * 48):
                at = sweep_start + timedelta(minutes=30 * step)
                for channel in _CHANNELS:
                    c = self._planned(pack, debtor_timezone, at, channel,
                                      subdivision=subdivision, defaults=contact_defaults)
                    out.append((c, pack.judge(c, pack_config)))
        out += [(c, pack.judge(c, pack_config)) for c in extra_contacts]
        return out

    def test_implements_protocol(self, pack: Any) -> None:
        assert isinstance(pack, CompliancePack)
        assert re.fullmatch(r"[A-Z]{2}", pack.country), "country must be ISO 3166-1 alpha-2"
        assert issubclass(pack.Config, msgspec.Struct)
        assert msgspec.json.schema(pack.Config)

    def test_rules_are_described(self, pack: Any) -> None:
        rules = pack.rules()
        assert rules, "a pack must describe its rules"
        codes = [r.code for r in rules]
        assert len(codes) == len(set(codes)), "rule codes must be unique"
        assert all(r.title and r.description for r in rules)

    def test_every_verdict_has_known_reason_codes(
        self, pack: Any, sweep: list[tuple[PlannedContact, ContactVerdict]]
    ) -> None:
        known = {r.code for r in pack.rules()}
        for contact, verdict in sweep:
            assert isinstance(verdict, Allow | Defer | Deny), verdict
            assert verdict.reasons, f"no reasons for {contact}"
            unknown = {r.code for r in verdict.reasons} - known
            assert not unknown, f"reason codes {unknown} are not listed in rules()"

    def test_defer_is_to_an_aware_later_instant_and_progresses(
        self, pack: Any, pack_config: Any, sweep: list[tuple[PlannedContact, ContactVerdict]]
    ) -> None:
        for contact, verdict in sweep:
            if not isinstance(verdict, Defer):
                continue
            assert verdict.until.tzinfo is not None
            assert verdict.until > contact.planned_at, f"defer must be later: {contact}"
            again = pack.judge(
                msgspec.structs.replace(contact, planned_at=verdict.until), pack_config
            )
            if isinstance(again, Defer):
                assert again.until > verdict.until, "deferring must make progress"

    def test_judge_is_deterministic(
        self, pack: Any, pack_config: Any, sweep: list[tuple[PlannedContact, ContactVerdict]]
    ) -> None:
        for contact, verdict in sweep[:: max(1, len(sweep) // 200)]:
            assert pack.judge(contact, pack_config) == verdict

    def test_unrelated_third_party_is_denied(
        self, pack: Any, pack_config: Any, debtor_timezone: str, sweep_start: datetime
    ) -> None:
        if self.third_party_contact_allowed:
            pytest.skip("this law permits third-party contact")
        roles: tuple[str, ...] = get_args(RecipientRole)
        assert "other_third_party" in roles
        for hour in (10, 15):
            at = sweep_start + timedelta(hours=hour)
            contact = self._planned(pack, debtor_timezone, at, "voice", "other_third_party")
            assert isinstance(pack.judge(contact, pack_config), Deny)

    def _check_minimal(self, pack: Any, config: Any, contact: PlannedContact,
                       verdict: ContactVerdict) -> None:
        if not isinstance(verdict, Defer):
            return
        at_until = pack.judge(msgspec.structs.replace(contact, planned_at=verdict.until), config)
        assert isinstance(at_until, Allow), (
            f"not allowed at its own Defer.until {verdict.until}: {at_until} ({contact})")
        before = verdict.until - timedelta(minutes=1)
        if before >= contact.planned_at:
            earlier = pack.judge(msgspec.structs.replace(contact, planned_at=before), config)
            assert not isinstance(earlier, Allow), (
                f"allowed one minute before Defer.until {verdict.until}: not minimal")

    def test_defer_is_lawful_and_minimal(
        self, pack: Any, pack_config: Any, sweep: list[tuple[PlannedContact, ContactVerdict]]
    ) -> None:
        for contact, verdict in sweep:
            self._check_minimal(pack, pack_config, contact, verdict)

    def _zones(self, pack: Any, debtor_timezone: str) -> list[str]:
        return list(getattr(pack, "timezones", None) or [debtor_timezone])

    def test_dst_transitions(
        self,
        pack: Any,
        pack_config: Any,
        debtor_timezone: str,
        sweep_start: datetime,
        contact_defaults: dict[str, Any],
    ) -> None:
        for zone_name in self._zones(pack, debtor_timezone):
            for transition in _transitions(zone_name, sweep_start.year):
                for step in range(-4 * 36, 4 * 36):
                    at = transition + timedelta(minutes=15 * step)
                    for channel in ("voice", "sms"):
                        c = self._planned(pack, zone_name, at, channel, defaults=contact_defaults)
                        verdict = pack.judge(c, pack_config)
                        assert verdict.reasons
                        self._check_minimal(pack, pack_config, c, verdict)

    def test_public_holidays(
        self,
        pack: Any,
        pack_config: Any,
        debtor_timezone: str,
        subdivisions: list[str | None],
        sweep_start: datetime,
        contact_defaults: dict[str, Any],
    ) -> None:
        zone = ZoneInfo(debtor_timezone)
        for subdivision in subdivisions:
            days = pack.calendar(sweep_start.year, subdivision)
            assert days or not self.closes_on_holidays, "a holiday calendar is needed"
            for holiday in days:
                at = datetime.combine(holiday.date, time(10), zone)
                c = self._planned(pack, debtor_timezone, at, "voice", subdivision=subdivision,
                                  defaults=contact_defaults)
                verdict = pack.judge(c, pack_config)
                if self.closes_on_holidays:
                    assert not isinstance(verdict, Allow), f"call allowed on {holiday}"
                self._check_minimal(pack, pack_config, c, verdict)

    def test_bad_input_is_refused(
        self, pack: Any, pack_config: Any, debtor_timezone: str, sweep_start: datetime
    ) -> None:
        with pytest.raises(InvalidContact):
            self._planned(pack, debtor_timezone, sweep_start.replace(tzinfo=None), "sms")
        with pytest.raises(InvalidContact):
            self._planned(pack, "Mars/Olympus_Mons", sweep_start, "sms")
        if getattr(pack, "timezones", None) is None:
            return
        far = "Asia/Tokyo" if "Asia/Tokyo" not in pack.timezones else "Europe/Oslo"
        with pytest.raises(InvalidContact):
            pack.judge(self._planned(pack, far, sweep_start, "sms"), pack_config)
        with pytest.raises(InvalidContact):
            pack.judge(self._planned(pack, debtor_timezone, sweep_start, "sms",
                                     subdivision=f"{pack.country}-ZZZ"), pack_config)

    def test_charge_findings_cite_listed_rules(self, pack: Any, sweep_start: datetime) -> None:
        if not hasattr(pack, "charges"):
            pytest.skip("the pack predates charges()")
        known = {r.code for r in pack.rules()}
        today = sweep_start.date()
        for dpd in (0, 10, 20, 21, 90):
            for notices in ([], [today - timedelta(days=30)], [today, today]):
                for kind in ("supervised_lender", "other"):
                    query = ChargeQuery(debtor_country=pack.country, today=today,
                                        days_past_due=dpd, notices=notices, written_notice=True,
                                        creditor_kind=kind)
                    for found in pack.charges(query):
                        assert isinstance(found, ChargeFinding)
                        assert found.reason.code in known, f"{found.reason.code} not in rules()"
                        if found.lawful_from is not None and not found.allowed:
                            assert found.lawful_from > today or found.kind == "bureau_report"

    def test_calendar(self, pack: Any, subdivisions: list[str | None]) -> None:
        for subdivision in subdivisions:
            days = pack.calendar(2026, subdivision)
            assert all(isinstance(d, Holiday) and d.date.year == 2026 for d in days)
            keys = [(d.date, d.subdivision, d.name) for d in days]
            assert len(keys) == len(set(keys)), "holidays must not repeat"
