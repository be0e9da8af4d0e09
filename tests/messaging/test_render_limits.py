"""Template rendering is bounded: immutable sandbox, source/output/time limits enforced
inside the render, rendering off the event loop, and each failure names its field."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer

from cartera.errors import Invalid
from cartera.messaging import rendering, sandbox, templates
from cartera.messaging.models import MessageTemplate
from tests.conftest import TenantClient
from tests.messaging.test_batch import _debtors, _send, provider  # noqa: F401 (fixture)
from tests.messaging.test_sending import RunJobs, setup
from tests.messaging.test_templates import SMS, debtor_with_debt

NESTED_10_10 = ("{% for i in range(10000) %}{% for j in range(10000) %}"
                "{% for k in range(100) %}{% endfor %}{% endfor %}{% endfor %}")
"""10^10 loop steps and no output at all: only a check inside the loop can stop it."""


def _refused(source: str, **ctx: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        rendering.render(source, ctx, "body")
    assert caught.value.param == "body"
    return caught.value


def test_huge_string_multiplication_is_refused_before_it_is_built() -> None:
    started = time.monotonic()
    assert _refused("{{ 'x' * 5000000 }}").code == "template_output_too_large"
    assert time.monotonic() - started < 0.5
    assert rendering.render("{{ 'x' * 50 }}", {}, "body") == "x" * 50


@pytest.mark.parametrize("source", [
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'.center(100000000) }}",
    "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "{{ ('x' * 100000)|list|join('y' * 1000) }}",
    "{{ ('\n' * 100000)|indent(100000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 2 ** 100000000 }}",
    "{{ [0] * 1000000000 }}",
])
def test_operations_that_grow_text_are_bounded(source: str) -> None:
    assert _refused(source).code == "template_output_too_large"


def test_output_is_streamed_and_stops_past_the_limit() -> None:
    # Each piece is small; only the total is too long.
    source = "{% for i in range(5000) %}{{ 'y' * 100 }}{% endfor %}"
    assert _refused(source).code == "template_output_too_large"


def test_range_is_capped() -> None:
    assert _refused("{{ range(100000)|list|length }}").code == "template_range_too_large"
    assert rendering.render("{{ range(10)|sum }}", {}, "body") == "45"


@pytest.mark.parametrize("source", [
    NESTED_10_10,
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
])
def test_runaway_templates_stop_within_the_time_budget(source: str) -> None:
    started = time.monotonic()
    assert _refused(source).code == "template_timeout"
    elapsed = time.monotonic() - started
    assert sandbox.LIMITS.time_budget_seconds <= elapsed < sandbox.LIMITS.time_budget_seconds + 1.5


def test_the_sandbox_is_immutable_and_ordinary_templates_still_work() -> None:
    assert _refused("{{ [1, 2].append(3) }}").code == "template_unsafe"
    assert _refused("{{ 1 / 0 }}").code == "template_render_error"
    text = rendering.render("{{ '%d cuotas' % 5000000 }} {{ '{:,}'.format(5000000) }} "
                            "{% for c in s %}{{ loop.index }}{% endfor %}", {"s": "abc"}, "body")
    assert text == "5000000 cuotas 5,000,000 123"


def _sms(body: str) -> MessageTemplate:
    return MessageTemplate(channel="sms", locale="es-PE", code="t", name="t", body=body)


async def test_rendering_runs_off_the_event_loop() -> None:
    class Probe:
        thread = 0

        def __str__(self) -> str:
            Probe.thread = threading.get_ident()
            return "ok"

    content = await templates.render_message(_sms("{{ probe }}"), {"probe": Probe()})
    assert content.text == "ok"  # type: ignore[union-attr]
    assert Probe.thread not in (0, threading.get_ident())

    # A runaway template leaves the loop free while it burns its budget.
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    tick = asyncio.create_task(ticker())
    with pytest.raises(Invalid):
        await templates.render_message(_sms(NESTED_10_10), {})
    tick.cancel()
    # a blocked loop would tick once, after the whole budget; a busy machine ticks less often
    assert len(gaps) >= 3 and max(gaps) < 0.5


async def test_save_refuses_a_template_past_the_source_limit(tenant: TenantClient) -> None:
    body = "x" * (sandbox.LIMITS.max_source_chars + 1)
    r = await tenant.api.post("/v1/templates", json={**SMS, "body": body})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("template_too_large", "body")
    email = {**SMS, "code": "mail", "channel": "email", "subject": "Aviso", "body": "Hola",
             "html": "<p>" + body + "</p>"}
    r = await tenant.api.post("/v1/templates", json=email)
    assert (r.status_code, r.json()["param"]) == (422, "html")


async def test_preview_of_a_template_bomb_is_a_422_naming_the_field(
        tenant: TenantClient) -> None:
    d = await debtor_with_debt(tenant)
    email = {**SMS, "code": "bomb", "channel": "email", "subject": "{{ 'x' * 5000000 }}",
             "html": "<p>hola</p>"}
    t = (await tenant.api.post("/v1/templates", json=email)).json()
    r = await tenant.api.post(f"/v1/templates/{t['id']}/preview", json={"debtor_id": d})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("template_output_too_large", "subject")


async def test_a_template_that_cannot_render_at_send_time_fails_that_message(
        tenant: TenantClient, provider: FakeHTTPServer,  # noqa: F811
        run_jobs: RunJobs) -> None:
    _, integration, _ = await setup(tenant, provider)
    r = await tenant.api.post("/v1/templates", json={**SMS, "code": "later",
                                                     "body": "Hola {{ debtor.first_name }}"})
    template = int(r.json()["id"])
    debtors = await _debtors(tenant, 1)
    [queued] = await _send(tenant, debtors, integration, template)
    r = await tenant.api.patch(f"/v1/templates/{template}", json={"body": NESTED_10_10})
    assert r.status_code == 200, r.text
    await run_jobs()
    msg = (await tenant.api.get(f"/v1/interactions/{queued}")).json()
    assert (msg["status"], msg["failure_code"]) == ("failed", "template_timeout")
    assert not provider.requests
